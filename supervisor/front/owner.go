package front

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ErrForeignListener is wrapped by the errors of a readiness probe that
// found a socket listening on the worker's port that no process of the
// worker holds: another program took the port, and a connect that succeeds
// proves nothing about the worker.
var ErrForeignListener = errors.New("front: port held by a program outside the worker")

// errNotListening: nothing listens on the port yet.
var errNotListening = errors.New("front: nothing listens on the port")

// procRoot is where the proc filesystem is read; tests keep the default.
const procRoot = "/proc"

// checkOwner says whether the sockets listening where a connection to
// 127.0.0.1:port lands all belong to the process tree of pid root: its
// process group (npm -> sh -> node keep the group wattd gave the worker) or
// its descendants (a child that made a group of its own). It returns nil
// when they do, errNotListening when there is none, and an error wrapping
// ErrForeignListener naming the holder when one is someone else's.
//
// The sockets are found by inode: /proc/net/tcp{,6} list the listening
// sockets with their inodes, and /proc/<pid>/fd of the worker's processes
// link to the inodes they hold.
func checkOwner(port, root int) error {
	inodes, err := listeningInodes(port)
	if err != nil {
		return err
	}
	if len(inodes) == 0 {
		return errNotListening
	}
	held := socketsOf(treeOf(root))
	var foreign []uint64
	for _, ino := range inodes {
		if !held[ino] {
			foreign = append(foreign, ino)
		}
	}
	if len(foreign) == 0 {
		return nil
	}
	return &foreignError{port: port, inodes: foreign}
}

// foreignError names the holders only when it is printed: finding them
// means reading every process's fds, too much for every probe.
type foreignError struct {
	port   int
	inodes []uint64
}

func (e *foreignError) Error() string {
	return fmt.Sprintf("%v: 127.0.0.1:%d is held by %s", ErrForeignListener, e.port, holders(e.inodes))
}

func (e *foreignError) Unwrap() error { return ErrForeignListener }

// listeningInodes returns the inodes of the TCP sockets in LISTEN state on
// port that accept connections to 127.0.0.1: bound to 127.0.0.1, to
// 0.0.0.0, to ::ffff:127.0.0.1 or to :: (dual-stack unless IPV6_V6ONLY,
// which /proc does not show; counted, to be safe).
func listeningInodes(port int) ([]uint64, error) {
	var inodes []uint64
	for _, name := range []string{"tcp", "tcp6"} {
		f, err := os.Open(filepath.Join(procRoot, "net", name))
		if err != nil {
			if name == "tcp6" && errors.Is(err, os.ErrNotExist) {
				continue // IPv6 disabled
			}
			return nil, fmt.Errorf("front: list listening sockets: %w", err)
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode …
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "0A" { // 0A: TCP_LISTEN
				continue
			}
			ip, p, ok := parseProcAddr(fields[1])
			if !ok || p != port || !(ip.IsUnspecified() || ip.Equal(net.IPv4(127, 0, 0, 1))) {
				continue
			}
			ino, err := strconv.ParseUint(fields[9], 10, 64)
			if err == nil && ino != 0 {
				inodes = append(inodes, ino)
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("front: list listening sockets: %w", err)
		}
	}
	return inodes, nil
}

// parseProcAddr parses "0100007F:1F90" (or the 32-digit IPv6 form). The
// kernel prints the address as 32-bit words in host byte order.
func parseProcAddr(s string) (net.IP, int, bool) {
	h, ps, ok := strings.Cut(s, ":")
	if !ok || (len(h) != 8 && len(h) != 32) {
		return nil, 0, false
	}
	raw, err := hex.DecodeString(h)
	if err != nil {
		return nil, 0, false
	}
	ip := make(net.IP, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(ip[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	port, err := strconv.ParseUint(ps, 16, 16)
	if err != nil {
		return nil, 0, false
	}
	return ip, int(port), true
}

// treeOf returns root and every process in its process group or below it.
func treeOf(root int) []int {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return []int{root}
	}
	parent := make(map[int]int, len(entries))
	in := make(map[int]bool)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, pgrp, ok := statOf(pid)
		if !ok {
			continue
		}
		parent[pid] = ppid
		if pid == root || pgrp == root {
			in[pid] = true
		}
	}
	for pid := range parent {
		if in[pid] {
			continue
		}
		// Walk up; the depth bound guards against a cycle made of pids
		// reused while /proc was being read.
		for p, depth := parent[pid], 0; p > 1 && depth < 64; p, depth = parent[p], depth+1 {
			if p == root {
				in[pid] = true
				break
			}
		}
	}
	tree := make([]int, 0, len(in))
	for pid := range in {
		tree = append(tree, pid)
	}
	return tree
}

// statOf reads a process's parent and process group from /proc/pid/stat.
func statOf(pid int) (ppid, pgrp int, ok bool) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, false
	}
	// The command name in parentheses may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:])) // state ppid pgrp …
	if len(f) < 3 {
		return 0, 0, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgrp, err2 := strconv.Atoi(f[2])
	return ppid, pgrp, err1 == nil && err2 == nil
}

// socketsOf returns the inodes of the sockets the processes hold. Processes
// of other users cannot be read, which is fine: their sockets are not the
// worker's.
func socketsOf(pids []int) map[uint64]bool {
	held := make(map[uint64]bool)
	for _, pid := range pids {
		dir := filepath.Join(procRoot, strconv.Itoa(pid), "fd")
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if ino, ok := socketInode(filepath.Join(dir, e.Name())); ok {
				held[ino] = true
			}
		}
	}
	return held
}

func socketInode(fdPath string) (uint64, bool) {
	l, err := os.Readlink(fdPath)
	if err != nil {
		return 0, false
	}
	s, ok := strings.CutPrefix(l, "socket:[")
	if !ok {
		return 0, false
	}
	ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64)
	return ino, err == nil
}

// holders names the processes holding the sockets, for the log: "pid 123
// (python3)", or the inode when the holder cannot be seen (another user's).
func holders(inodes []uint64) string {
	want := make(map[uint64]bool, len(inodes))
	for _, ino := range inodes {
		want[ino] = true
	}
	var names []string
	if entries, err := os.ReadDir(procRoot); err == nil {
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			for ino := range socketsOf([]int{pid}) {
				if want[ino] {
					delete(want, ino)
					comm, _ := os.ReadFile(filepath.Join(procRoot, e.Name(), "comm"))
					names = append(names, fmt.Sprintf("pid %d (%s)", pid, strings.TrimSpace(string(comm))))
				}
			}
		}
	}
	for ino := range want {
		names = append(names, fmt.Sprintf("a process wattd cannot see (socket inode %d)", ino))
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
