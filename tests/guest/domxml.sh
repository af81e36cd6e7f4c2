#!/bin/sh
# Print the domain XML of the test guest.
#   domxml.sh NAME CONSOLE_LOG [--memory MiB] [--fill MiB] [--vcpus N] [--period S] [--no-verify] [--churn] [--disk FILE] [--balloon] [--template] [--file-memory] [--memfd-memory] [--emulator PATH]
# The serial console goes to CONSOLE_LOG; --fill makes the guest fill that
# much RAM with pseudo-random data at boot; --period sets the seconds
# between heartbeats; --no-verify never checksums that
# data (for benchmarks); --balloon gives it a virtio balloon; --template
# gives it template memory (a template producer); --file-memory gives it
# RAM in a file libvirt makes, mapped shared, --memfd-memory in a memfd
# mapped shared; --emulator runs it on PATH.
set -eu
. "$(dirname "$0")/../../scripts/lib.sh"

[ $# -ge 2 ] || die "usage: domxml.sh NAME CONSOLE_LOG [--memory MiB] [--fill MiB] [--vcpus N] [--period S] [--no-verify] [--churn] [--disk FILE] [--balloon] [--template] [--file-memory] [--memfd-memory] [--emulator PATH]"
name=$1
console=$2
shift 2
memory=256
fill=0
vcpus=1
period=1
verify=1
churn=0
disk=""
balloon=none
backing=""
emulator=/usr/bin/qemu-system-x86_64
while [ $# -gt 0 ]; do
    case "$1" in
        --memory) memory=$2; shift 2 ;;
        --fill) fill=$2; shift 2 ;;
        --vcpus) vcpus=$2; shift 2 ;;
        --period) period=$2; shift 2 ;;
        --no-verify) verify=0; shift ;;
        --churn) churn=1; shift ;;
        --disk)
            format=raw
            case "$2" in *.qcow2) format=qcow2 ;; esac
            disk="
    <disk type='file' device='disk'>
      <driver name='qemu' type='$format'/>
      <source file='$2'/>
      <target dev='vda' bus='virtio'/>
    </disk>"
            shift 2 ;;
        --balloon) balloon=virtio; shift ;;
        --template)
            backing="
  <memoryBacking>
    <source type='file'/>
    <access mode='shared'/>
    <template/>
  </memoryBacking>"
            shift ;;
        --file-memory)
            backing="
  <memoryBacking>
    <source type='file'/>
    <access mode='shared'/>
  </memoryBacking>"
            shift ;;
        --memfd-memory)
            backing="
  <memoryBacking>
    <source type='memfd'/>
    <access mode='shared'/>
  </memoryBacking>"
            shift ;;
        --emulator) emulator=$2; shift 2 ;;
        *) die "unknown option '$1'" ;;
    esac
done

guest=$("$(dirname "$0")/build.sh")
cat <<XML
<domain type='qemu'>
  <name>$name</name>
  <uuid>$(domain_uuid "$name")</uuid>
  <genid/>
  <memory unit='MiB'>$memory</memory>$backing
  <vcpu>$vcpus</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$guest/vmlinuz</kernel>
    <initrd>$guest/initrd.img</initrd>
    <cmdline>console=ttyS0 quiet panic=-1 guest.fill=$fill guest.period=$period guest.verify=$verify guest.churn=$churn</cmdline>
  </os>
  <features>
    <acpi/>
  </features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>$emulator</emulator>$disk
    <serial type='file'>
      <source path='$console'/>
      <target port='0'/>
    </serial>
    <console type='file'>
      <source path='$console'/>
      <target type='serial' port='0'/>
    </console>
    <memballoon model='$balloon'/>
  </devices>
</domain>
XML
