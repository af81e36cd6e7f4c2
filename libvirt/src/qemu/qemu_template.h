/*
 * qemu_template.h: VM templates and their clones
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Lesser General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 *
 * This library is distributed in the hope that it will be useful,
 * but WITHOUT ANY WARRANTY; without even the implied warranty of
 * MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the GNU
 * Lesser General Public License for more details.
 *
 * You should have received a copy of the GNU Lesser General Public
 * License along with this library.  If not, see
 * <http://www.gnu.org/licenses/>.
 */

#pragma once

#include "qemu_conf.h"
#include "qemu_capabilities.h"
#include "qemu_saveimage.h"

bool
qemuTemplateIsProducer(const virDomainDef *def);

bool
qemuTemplateIsClone(const virDomainDef *def);

int
qemuTemplateCheckNotHeld(virDomainObj *vm);

int
qemuTemplateCheckNotImage(virQEMUDriver *driver,
                          const char *path,
                          virQEMUSaveData *data);

int
qemuTemplateCheckCloneSource(virDomainObj *vm);

int
qemuTemplateCheckImageDefine(const virDomainDef *def,
                             const virDomainDef *newdef);

int
qemuTemplateCheckRevert(virDomainObj *vm,
                        const virDomainDef *def);

int
qemuTemplateCheckSnapshot(virDomainObj *vm);

int
qemuTemplateCheckBlockCommit(virDomainObj *vm,
                             virDomainDiskDef *disk,
                             virStorageSource *base);

int
qemuTemplateCheckRedefine(virDomainObj *vm,
                          virDomainDef *oldDef,
                          virDomainDef *newDef);

char **
qemuTemplateMemoryFiles(virQEMUDriver *driver,
                        const virDomainDef *def);

void
qemuTemplateMemoryRemove(const virDomainDef *def);

char *
qemuTemplateImagePath(const virDomainDef *def);

int
qemuTemplateBasesProtect(virQEMUDriver *driver,
                         virDomainObj *vm,
                         virDomainDef *labelDef,
                         bool strict);

int
qemuTemplateLoad(virDomainObj *vm,
                 void *opaque);

int
qemuTemplateCheckUndefine(virDomainObj *vm);

int
qemuTemplateDiscard(virDomainObj *vm);

int
qemuTemplateRemove(virQEMUDriver *driver,
                   virDomainObj *vm,
                   unsigned int flags);

int
qemuTemplateCreate(virQEMUDriver *driver,
                   virDomainObj *vm);

typedef int (*qemuTemplateEnsureACL)(virConnectPtr conn,
                                     virDomainDef *def);

virDomainObj *
qemuTemplateRestoreCloneBegin(virConnectPtr conn,
                              virQEMUDriver *driver,
                              const virDomainDef *def,
                              qemuTemplateEnsureACL ensureACL);

void
qemuTemplateRestoreCloneEnd(virDomainObj **tmpl);

void
qemuTemplateCloneRemoveOverlays(virDomainObj *vm);

void
qemuTemplateCloneKeepOverlays(virDomainObj *vm);

virDomainPtr
qemuTemplateClone(virConnectPtr conn,
                  virQEMUDriver *driver,
                  virDomainObj *tmpl,
                  const char *name,
                  const char *dxml,
                  const char **nics,
                  size_t nnics,
                  unsigned int flags,
                  qemuTemplateEnsureACL ensureACL);

int
qemuTemplateRAMIsKept(virQEMUDriver *driver,
                      const virDomainDef *def);

int
qemuTemplateRAMCheckNotKept(virQEMUDriver *driver,
                            virDomainObj *vm);

int
qemuTemplateRAMCheckKeep(virDomainObj *vm,
                         const char *image);

int
qemuTemplateRAMKeep(virQEMUDriver *driver,
                    virDomainObj *vm,
                    const char *nonce,
                    const char *image,
                    bool managed);

int
qemuTemplateRAMCheckKept(virQEMUDriver *driver,
                         const virDomainDef *def,
                         const char *image,
                         const char *nonce);

int
qemuTemplateRAMTakeBack(virQEMUDriver *driver,
                        virDomainObj *vm);

int
qemuTemplateRAMRestored(virQEMUDriver *driver,
                        virDomainObj *vm);

void
qemuTemplateRAMStopped(virQEMUDriver *driver,
                       virDomainObj *vm);

bool
qemuTemplateRAMImageIsLost(virQEMUDriver *driver,
                           const virDomainDef *def,
                           virQEMUSaveData *data);

int
qemuTemplateRAMCheckUndefine(virQEMUDriver *driver,
                             virDomainObj *vm,
                             bool managedSave);

int
qemuTemplateRAMDiscard(virQEMUDriver *driver,
                       const virDomainDef *def,
                       bool managed);
