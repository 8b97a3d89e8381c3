// SPDX-License-Identifier: GPL-2.0
/*
 * vm-exit: report a status to the host through QEMU's isa-debug-exit
 * device (iobase 0xf4) and stop the VM. QEMU exits with (status << 1) | 1.
 * Built statically by kernel/vm/run.sh and copied into the initramfs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/io.h>

int main(int argc, char **argv)
{
	int code = argc > 1 ? atoi(argv[1]) : 0;

	if (ioperm(0xf4, 1, 1)) {
		perror("vm-exit: ioperm");
		return 1;
	}
	outb((unsigned char)code, 0xf4);
	/* Not reached when the device is present. */
	fprintf(stderr, "vm-exit: no isa-debug-exit device\n");
	return 1;
}
