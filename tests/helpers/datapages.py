#!/usr/bin/env python3
"""Prints the 4 KiB pages of FILE that hold data (not holes), one page number a line, as
SEEK_DATA/SEEK_HOLE find them: the pages a sparse snapshot memory file holds."""
import os
import sys

PAGE = 4096

fd = os.open(sys.argv[1], os.O_RDONLY)
end = os.fstat(fd).st_size
off = 0
while off < end:
    try:
        data = os.lseek(fd, off, os.SEEK_DATA)
    except OSError:
        break  # ENXIO: nothing but a hole after off
    hole = os.lseek(fd, data, os.SEEK_HOLE)
    for page in range(data // PAGE, (hole + PAGE - 1) // PAGE):
        print(page)
    off = hole
