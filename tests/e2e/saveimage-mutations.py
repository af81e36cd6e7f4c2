#!/usr/bin/python3
"""Write malformed copies of a libvirt QEMU save image (a template image).

    saveimage-mutations.py IMAGE OUTDIR [SEED]

Each file in OUTDIR is IMAGE with one defect, named after it: truncated
at points of the header, XML and stream; header fields (version, data
length, cookie offset, flags) set to edge values; bytes of the XML and
cookie replaced at random; the migration stream overwritten; the XML
without its terminating NUL.  The header is libvirt's virQEMUSaveHeader:
16 bytes of magic, then little-endian u32 version, data_len, was_running,
compressed, cookieOffset and 14 unused u32.
"""

import os
import random
import struct
import sys

HEADER = struct.Struct("<16s5I56s")


def main():
    image, outdir = sys.argv[1], sys.argv[2]
    rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
    data = open(image, "rb").read()
    magic, version, data_len, running, compressed, cookie, unused = \
        HEADER.unpack_from(data)
    start = HEADER.size
    end = start + data_len
    os.makedirs(outdir, exist_ok=True)

    def write(name, content):
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(content)

    def header(**fields):
        values = dict(version=version, data_len=data_len, running=running,
                      compressed=compressed, cookie=cookie)
        values.update(fields)
        return HEADER.pack(magic, values["version"], values["data_len"],
                           values["running"], values["compressed"],
                           values["cookie"], unused) + data[start:]

    for at in (0, 1, 15, 16, 20, 40, start - 1, start, start + 1,
               start + cookie // 2, start + cookie, end - 1, end, end + 100,
               end + (len(data) - end) // 2, len(data) - 1):
        write("truncated-at-%d" % at, data[:at])

    edges = (0, 1, 0x7fffffff, 0x80000000, 0xffffffff)
    for value in edges + (3,):
        write("version-%#x" % value, header(version=value))
    for value in edges + (start, cookie, len(data), 16 * 1024 * 1024 + 1):
        write("data_len-%#x" % value, header(data_len=value))
    for value in edges + (data_len, data_len + 1):
        write("cookieOffset-%#x" % value, header(cookie=value))
    for value in (2, 0xffffffff):
        write("was_running-%#x" % value, header(running=value))
    for value in (1, 2, 99, 0xffffffff):
        write("compressed-%#x" % value, header(compressed=value))

    # No NUL anywhere in the XML and cookie: a reader must not run past them.
    filled = bytearray(data)
    for i in range(start, end):
        if filled[i] == 0:
            filled[i] = ord(" ")
    write("no-nul", bytes(filled))

    used = data.index(b"\0", start)
    for n in range(24):
        mutated = bytearray(data)
        for _ in range(rng.choice((1, 4, 32))):
            mutated[rng.randrange(start, used)] = rng.randrange(256)
        write("xml-bytes-%02d" % n, bytes(mutated))

    for n, at in enumerate((end, end + 4096, (end + len(data)) // 2)):
        mutated = bytearray(data)
        mutated[at:at + 4096] = bytes(rng.randrange(256) for _ in range(4096))
        write("stream-%d" % n, bytes(mutated[:len(data)]))


if __name__ == "__main__":
    main()
