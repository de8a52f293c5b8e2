# SPDX-License-Identifier: GPL-2.0
#
# Thin top-level Makefile. The kernel module is built by Kbuild (the root
# Kbuild file and module/Kbuild); everything else has its own Makefile.
#
#   make demo          boot Debian kernels in QEMU and show what the module does
#   make check         build everything and run every test suite (QEMU, both kernels)
#   make check-debug   the suites under a lockdep/KASAN/fault-injection kernel (built once)
#   make soak          everything at once for 5 minutes per kernel (KVMAS_SOAK_SECONDS)
#   make module        build the module for the running kernel (or KDIR=...)
#   sudo make install  DKMS + udev rule + library + CLI on a real host

KDIR ?= /lib/modules/$(shell uname -r)/build
PREFIX ?= /usr/local
DESTDIR ?=
VERSION := $(shell sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' dkms.conf)
DKMS_SRC := $(DESTDIR)/usr/src/kvm-atomic-slots-$(VERSION)
UDEV_DIR ?= /lib/udev/rules.d
MANDIR ?= $(PREFIX)/share/man
MAN1 := man/kvmas.1
MAN3 := man/libkvmas.3 man/kvmas_session.3 man/kvmas_batch.3 man/kvmas_ring.3
MAN4 := man/kvm_atomic_slots.4
MAN8 := man/libkvmas-preload.8

all: module lib tools

module:
	sh module/build.sh $(KDIR) W=1

module-clean:
	$(MAKE) -C $(KDIR) M=$(CURDIR) clean
	$(MAKE) -C tools/klp-convert clean

lib:
	$(MAKE) -C lib

tools: lib
	$(MAKE) -C tools

tests:
	$(MAKE) -C tests

check:
	tests/check.sh

demo:
	tests/demo.sh

check-debug:
	tests/debug/check-debug.sh

soak:
	tests/soak.sh

# Only what DKMS needs to rebuild the module: Kbuild, dkms.conf, sources.
dkms-install:
	install -d $(DKMS_SRC)/module $(DKMS_SRC)/uapi/linux $(DKMS_SRC)/tools/klp-convert
	install -m 0644 Kbuild dkms.conf $(DKMS_SRC)/
	install -m 0644 module/Kbuild module/*.c module/*.h module/klp-syms.list \
		$(DKMS_SRC)/module/
	install -m 0755 module/build.sh $(DKMS_SRC)/module/
	install -m 0644 uapi/linux/kvm_atomic_slots.h $(DKMS_SRC)/uapi/linux/
	install -m 0644 tools/klp-convert/klp-convert.c tools/klp-convert/Makefile \
		$(DKMS_SRC)/tools/klp-convert/
	if [ -z "$(DESTDIR)" ]; then \
		dkms add -m kvm-atomic-slots -v $(VERSION) 2>/dev/null || true; \
		dkms install -m kvm-atomic-slots -v $(VERSION); \
	fi

# The preload shim's page only goes where the shim itself was built.
install-man:
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 \
		$(DESTDIR)$(MANDIR)/man4
	install -m 0644 $(MAN1) $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(MAN3) $(DESTDIR)$(MANDIR)/man3/
	install -m 0644 $(MAN4) $(DESTDIR)$(MANDIR)/man4/
	if [ -e lib/libkvmas-preload.so ]; then \
		install -D -m 0644 $(MAN8) $(DESTDIR)$(MANDIR)/man8/$(notdir $(MAN8)); \
	fi

uninstall-man:
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MAN1))) \
		$(addprefix $(DESTDIR)$(MANDIR)/man3/,$(notdir $(MAN3))) \
		$(addprefix $(DESTDIR)$(MANDIR)/man4/,$(notdir $(MAN4))) \
		$(addprefix $(DESTDIR)$(MANDIR)/man8/,$(notdir $(MAN8)))

install: dkms-install lib tools install-man
	install -D -m 0644 udev/60-kvm-atomic-slots.rules \
		$(DESTDIR)$(UDEV_DIR)/60-kvm-atomic-slots.rules
	$(MAKE) -C lib install PREFIX=$(PREFIX) DESTDIR=$(DESTDIR)
	$(MAKE) -C tools install PREFIX=$(PREFIX) DESTDIR=$(DESTDIR)
	if [ -z "$(DESTDIR)" ]; then \
		udevadm control --reload-rules 2>/dev/null || true; \
		ldconfig 2>/dev/null || true; \
	fi

# Undoes install; DKMS is only asked when installing for real (no DESTDIR).
uninstall: uninstall-man
	if [ -z "$(DESTDIR)" ]; then \
		dkms remove -m kvm-atomic-slots -v $(VERSION) --all || true; \
	fi
	rm -rf $(DKMS_SRC)
	rm -f $(DESTDIR)$(UDEV_DIR)/60-kvm-atomic-slots.rules
	$(MAKE) -C lib uninstall PREFIX=$(PREFIX) DESTDIR=$(DESTDIR)
	$(MAKE) -C tools uninstall PREFIX=$(PREFIX) DESTDIR=$(DESTDIR)

clean:
	rm -rf build
	$(MAKE) -C lib clean
	$(MAKE) -C tools clean
	$(MAKE) -C tests clean

.PHONY: all module module-clean lib tools tests check check-debug soak demo dkms-install \
	install install-man uninstall uninstall-man clean
