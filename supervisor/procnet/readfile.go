package procnet

import (
	"bytes"
	"encoding/binary"
	"os"
	"sync"
	"syscall"
)

// The readings of every worker (its /proc files and its cgroup's files)
// are made for each `ctl ps` and each metrics scrape: with hundreds of
// workers, thousands of small files. os.ReadFile spends more on what
// surrounds the read (an fstat to size the buffer, the runtime's file
// bookkeeping, a fresh buffer) than on the read itself; these readers make
// only the system calls the read needs, into a reused buffer.

var readBufs = sync.Pool{New: func() any { b := make([]byte, 4096); return &b }}

// ReadFile reads a small file of /proc or /sys whole. Its errors are
// *os.PathError, as os.ReadFile's.
func ReadFile(path string) ([]byte, error) {
	fd, err := open(path, 0)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	buf, n := *bp, 0
	for {
		m, err := syscall.Read(fd, buf[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if m == 0 {
			return bytes.Clone(buf[:n]), nil
		}
		if n += m; n == len(buf) {
			buf = append(buf, make([]byte, len(buf))...)
			*bp = buf
		}
	}
}

// countEntries counts the entries of a directory, "." and ".." left out,
// from its raw directory records: no name is copied.
func countEntries(path string) (int, error) {
	fd, err := open(path, syscall.O_DIRECTORY)
	if err != nil {
		return 0, err
	}
	defer syscall.Close(fd)
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	buf, count := *bp, 0
	for {
		n, err := syscall.Getdents(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, &os.PathError{Op: "getdents", Path: path, Err: err}
		}
		if n <= 0 {
			return count, nil
		}
		// struct linux_dirent64: ino 8, off 8, reclen 2, type 1, name.
		for o := 0; o+19 < n; {
			reclen := int(binary.NativeEndian.Uint16(buf[o+16:]))
			if reclen == 0 {
				break
			}
			name := buf[o+19 : o+reclen]
			if !(name[0] == '.' && (name[1] == 0 || name[1] == '.' && name[2] == 0)) {
				count++
			}
			o += reclen
		}
	}
}

func open(path string, flags int) (int, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC|flags, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}
