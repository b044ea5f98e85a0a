// Package procnet answers two questions from the kernel's /proc tables:
// which TCP sockets listen on a port, and which processes hold a socket.
// wattd asks them before it serves a port (is another program on it?) and
// before it takes a fronted worker as ready (is the listener the worker's?).
//
// /proc/net/tcp and tcp6 name each socket by inode; /proc/<pid>/fd links of
// a process read "socket:[inode]" for the sockets it holds. Only processes
// this user may inspect are seen (all of them as root).
package procnet

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Socket is a listening TCP socket in wattd's network namespace.
type Socket struct {
	Addr  netip.AddrPort // IPv4-mapped addresses are unmapped
	Inode uint64
}

// Listening returns the TCP sockets listening on port.
func Listening(port int) ([]Socket, error) {
	var out []Socket
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		socks, err := readTable(table, port)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && table == "/proc/net/tcp6" {
				continue // a kernel without IPv6
			}
			return nil, fmt.Errorf("list listening sockets: %w", err)
		}
		out = append(out, socks...)
	}
	return out, nil
}

func readTable(path string, port int) ([]Socket, error) {
	var out []Socket
	err := eachLine(path, func(line string) {
		if s, ok := parseLine(line); ok && int(s.Addr.Port()) == port {
			out = append(out, s)
		}
	})
	return out, err
}

// eachLine calls fn with every line of a /proc/net table but its header.
func eachLine(path string, fn func(line string)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // the header
	for sc.Scan() {
		fn(sc.Text())
	}
	return sc.Err()
}

// ConnectionsOn returns the states (ESTABLISHED, TIME_WAIT, …) of the TCP
// sockets other than listeners whose local port is port: connections, most
// often outgoing ones given the port from the kernel's ephemeral range,
// which keep a listener from binding it.
func ConnectionsOn(port int) []string {
	var out []string
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		_ = eachLine(table, func(line string) {
			f := strings.Fields(line)
			if len(f) < 4 || f[3] == tcpListen {
				return
			}
			_, portHex, ok := strings.Cut(f[1], ":")
			if p, err := strconv.ParseUint(portHex, 16, 16); ok && err == nil && int(p) == port {
				out = append(out, tcpStateName(f[3]))
			}
		})
	}
	return out
}

// EphemeralPorts is the kernel's range of local ports for outgoing
// connections (net.ipv4.ip_local_port_range).
func EphemeralPorts() (low, high int, ok bool) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0, false
	}
	low, err1 := strconv.Atoi(f[0])
	high, err2 := strconv.Atoi(f[1])
	return low, high, err1 == nil && err2 == nil
}

// tcpStateName names a state code of /proc/net/tcp (the kernel's
// include/net/tcp_states.h).
func tcpStateName(code string) string {
	names := map[string]string{"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
		"05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0B": "CLOSING"}
	if n, ok := names[code]; ok {
		return n
	}
	return "state " + code
}

// tcpListen is the state code of a listening socket in /proc/net/tcp.
const tcpListen = "0A"

// parseLine reads one line of /proc/net/tcp{,6}:
//
//	sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …
//
// and keeps listening sockets only.
func parseLine(line string) (Socket, bool) {
	f := strings.Fields(line)
	if len(f) < 10 || f[3] != tcpListen {
		return Socket{}, false
	}
	hostHex, portHex, ok := strings.Cut(f[1], ":")
	if !ok {
		return Socket{}, false
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return Socket{}, false
	}
	addr, ok := parseHexAddr(hostHex)
	if !ok {
		return Socket{}, false
	}
	inode, err := strconv.ParseUint(f[9], 10, 64)
	if err != nil || inode == 0 {
		return Socket{}, false
	}
	return Socket{Addr: netip.AddrPortFrom(addr, uint16(port)), Inode: inode}, true
}

// parseHexAddr decodes the kernel's address form: the address as 32-bit
// words, each printed as a number in the machine's byte order.
func parseHexAddr(s string) (netip.Addr, bool) {
	raw, err := hex.DecodeString(s)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.Addr{}, false
	}
	b := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(b[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	a, _ := netip.AddrFromSlice(b)
	return a.Unmap(), true
}

// ListeningOf returns the addresses of the listening TCP sockets that the
// processes hold, but those in except (by inode), sorted.
func ListeningOf(pids []int, except map[uint64]bool) []netip.AddrPort {
	held := SocketsOf(pids)
	if len(held) == 0 {
		return nil
	}
	var out []netip.AddrPort
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		_ = eachLine(table, func(line string) {
			if s, ok := parseLine(line); ok && held[s.Inode] && !except[s.Inode] {
				out = append(out, s.Addr)
			}
		})
	}
	slices.SortFunc(out, func(a, b netip.AddrPort) int { return a.Compare(b) })
	return slices.Compact(out)
}

// SocketsOf returns the inodes of the sockets the processes hold. Processes
// that cannot be read (gone, or another user's) hold none.
func SocketsOf(pids []int) map[uint64]bool {
	held := make(map[uint64]bool)
	for _, pid := range pids {
		dir := "/proc/" + strconv.Itoa(pid) + "/fd"
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if ino, ok := socketInode(dir + "/" + e.Name()); ok {
				held[ino] = true
			}
		}
	}
	return held
}

// AcceptedOn returns the inodes of the connections the processes hold
// that a listener on port accepted: TCP sockets, in any state but LISTEN,
// whose local port is port. Processes that cannot be read hold none.
func AcceptedOn(pids []int, port int) map[uint64]bool {
	held := SocketsOf(pids)
	out := map[uint64]bool{}
	if len(held) == 0 {
		return out
	}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		_ = eachLine(table, func(line string) {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] == tcpListen {
				return
			}
			_, portHex, ok := strings.Cut(f[1], ":")
			p, err := strconv.ParseUint(portHex, 16, 16)
			if !ok || err != nil || int(p) != port {
				return
			}
			if ino, err := strconv.ParseUint(f[9], 10, 64); err == nil && held[ino] {
				out[ino] = true
			}
		})
	}
	return out
}

// unixAcceptCon is the flag of a listening socket in /proc/net/unix.
const unixAcceptCon = "00010000"

// AcceptedOnUnix returns the inodes of the connections the processes hold
// that the Unix listener bound to path accepted: sockets bound to path
// that do not listen (an accepted socket shows its listener's path in
// /proc/net/unix).
func AcceptedOnUnix(pids []int, path string) map[uint64]bool {
	held := SocketsOf(pids)
	out := map[uint64]bool{}
	if len(held) == 0 || path == "" {
		return out
	}
	_ = eachLine("/proc/net/unix", func(line string) {
		//	Num RefCount Protocol Flags Type St Inode Path
		f, rest := make([]string, 0, 7), line
		for len(f) < 7 {
			rest = strings.TrimLeft(rest, " ")
			w, r, _ := strings.Cut(rest, " ")
			f, rest = append(f, w), r
		}
		if f[3] == unixAcceptCon || strings.TrimLeft(rest, " ") != path {
			return
		}
		if ino, err := strconv.ParseUint(f[6], 10, 64); err == nil && held[ino] {
			out[ino] = true
		}
	})
	return out
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

// Holder is a process that holds a socket.
type Holder struct {
	PID     int
	Command string // its command line, shortened for a message
}

func (h Holder) String() string { return fmt.Sprintf("pid %d (%s)", h.PID, h.Command) }

// Holders finds a process holding each of the sockets, by reading the open
// files of every process: costly, so it is for messages, not for polling.
// A socket whose holder cannot be seen is missing from the map.
func Holders(inodes []uint64) map[uint64]Holder {
	out := make(map[uint64]Holder, len(inodes))
	want := make(map[uint64]bool, len(inodes))
	for _, ino := range inodes {
		want[ino] = true
	}
	for _, pid := range pids() {
		for ino := range SocketsOf([]int{pid}) {
			if _, seen := out[ino]; want[ino] && !seen {
				out[ino] = Holder{PID: pid, Command: Command(pid)}
			}
		}
		if len(out) == len(want) {
			break
		}
	}
	return out
}

// UserThreads counts the threads of the processes whose real user is uid,
// as the kernel counts them against RLIMIT_NPROC (within this user
// namespace), and reports false when /proc cannot be listed. Processes
// that end meanwhile, or cannot be read, count for nothing.
func UserThreads(uid int) (int, bool) {
	all := pids()
	if all == nil {
		return 0, false
	}
	want := strconv.Itoa(uid)
	n := 0
	for _, pid := range all {
		b, err := ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil {
			continue
		}
		var real string
		threads := 0
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Uid:"); ok {
				if f := strings.Fields(v); len(f) > 0 {
					real = f[0]
				}
			} else if v, ok := strings.CutPrefix(line, "Threads:"); ok {
				threads, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		if real == want {
			n += threads
		}
	}
	return n, true
}

// pids lists the processes in /proc, in ascending order.
func pids() []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	out := make([]int, 0, len(entries))
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// Command returns a process's command line on one line, shortened, for
// messages that name a process; "?" when there is none to read.
func Command(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(b) == 0 {
		// A kernel thread or a zombie: its name at least.
		b, _ = os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	}
	// Arguments are NUL-separated and may hold newlines (a script given
	// with -c): one line of words reads better in a message.
	cmd := strings.Join(strings.Fields(strings.ReplaceAll(string(b), "\x00", " ")), " ")
	if cmd == "" {
		return "?"
	}
	if len(cmd) > 80 {
		cmd = cmd[:77] + "..."
	}
	return cmd
}

// Tree returns root and every process in its process group or below it:
// a worker's own processes, including children that made a group or a
// session of their own.
func Tree(root int) []int {
	parent := map[int]int{}
	in := map[int]bool{}
	for _, pid := range pids() {
		st, ok := ReadStat(pid)
		if !ok {
			continue
		}
		ppid, pgrp := st.PPID, st.PGRP
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

// Stat is what wattd reads from /proc/<pid>/stat.
type Stat struct {
	State      byte // R, S, D, Z, …
	PPID, PGRP int
	CPU        time.Duration // user + system time
	User       time.Duration // user time alone
	System     time.Duration // system time alone
	RSS        uint64        // resident set size, bytes
	VSize      uint64        // virtual memory size, bytes
	// Start is when the process started, in clock ticks since boot: with
	// the pid, it names one process, where a pid alone may be reused.
	Start uint64
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times; 100 on every
// Linux architecture wattd builds for.
const clockTicks = 100

// ReadStat reads a process's /proc/<pid>/stat; ok is false when it is gone.
// Its times are those of all the process's threads.
func ReadStat(pid int) (st Stat, ok bool) {
	return readStat("/proc/" + strconv.Itoa(pid) + "/stat")
}

// ReadThreadStat reads /proc/<pid>/task/<tid>/stat, one thread's figures
// (its times are that thread's alone); the main thread's tid is the pid.
func ReadThreadStat(pid, tid int) (st Stat, ok bool) {
	return readStat("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(tid) + "/stat")
}

func readStat(path string) (st Stat, ok bool) {
	b, err := ReadFile(path)
	if err != nil {
		return Stat{}, false
	}
	// The command name in parentheses may hold spaces and parentheses:
	// the fields start after the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return Stat{}, false
	}
	f := strings.Fields(string(b[i+1:])) // state ppid pgrp … utime(11) stime(12) … rss(21), in pages
	if len(f) < 22 {
		return Stat{}, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgrp, err2 := strconv.Atoi(f[2])
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	stime, _ := strconv.ParseUint(f[12], 10, 64)
	rss, _ := strconv.ParseUint(f[21], 10, 64)
	vsize, _ := strconv.ParseUint(f[20], 10, 64)
	start, _ := strconv.ParseUint(f[19], 10, 64)
	user, system := time.Duration(ut)*time.Second/clockTicks, time.Duration(stime)*time.Second/clockTicks
	return Stat{State: f[0][0], PPID: ppid, PGRP: pgrp, CPU: user + system, User: user, System: system,
		RSS: rss * pageSize, VSize: vsize, Start: start}, err1 == nil && err2 == nil
}

// ReadVmData is a process's data segment size, VmData of
// /proc/<pid>/status (the heap of its allocator and its other private
// writable mappings), which prom-client exports as process_heap_bytes.
func ReadVmData(pid int) (uint64, bool) {
	f, ok := lineFields(pid, "status", "VmData:") // "1234 kB"; none for a kernel thread or a zombie
	if !ok || len(f) != 2 || f[1] != "kB" {
		return 0, false
	}
	n, err := strconv.ParseUint(f[0], 10, 64)
	return n << 10, err == nil
}

// MaxOpenFiles is a process's soft limit of open files ("Max open files"
// in /proc/<pid>/limits); ok is false when it is gone or unlimited.
func MaxOpenFiles(pid int) (uint64, bool) {
	f, ok := lineFields(pid, "limits", "Max open files") // soft hard "files"
	if !ok || len(f) == 0 {
		return 0, false
	}
	n, err := strconv.ParseUint(f[0], 10, 64)
	return n, err == nil
}

// lineFields returns the fields after prefix on the line of
// /proc/<pid>/<file> that starts with it.
func lineFields(pid int, file, prefix string) ([]string, bool) {
	b, err := ReadFile("/proc/" + strconv.Itoa(pid) + "/" + file)
	if err != nil {
		return nil, false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			return strings.Fields(rest), true
		}
	}
	return nil, false
}

// HostCPU is the host's CPU time from /proc/stat, summed over its CPUs,
// in USER_HZ ticks: Idle, and Total as libuv's os.cpus() counts it (user,
// nice, system, idle and irq; I/O wait, softirq and steal left out).
type HostCPU struct {
	Idle, Total uint64
}

// ReadHostCPU reads the "cpu" line of /proc/stat.
func ReadHostCPU() (HostCPU, bool) {
	b, err := ReadFile("/proc/stat")
	if err != nil {
		return HostCPU{}, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return HostCPU{}, false
	}
	var v [7]uint64 // user nice system idle iowait irq softirq
	if !parseTicks(v[:], f[1:]) {
		return HostCPU{}, false
	}
	return HostCPU{Idle: v[3], Total: v[0] + v[1] + v[2] + v[3] + v[5]}, true
}

// CPUTimes is CPU time from /proc/stat in USER_HZ ticks, summed over
// some CPUs: Idle counts idle and I/O wait, Total every state but guest
// (which user already holds); CPUs is how many CPUs were summed.
type CPUTimes struct {
	Idle, Total uint64
	CPUs        int
}

// ReadCPUTimes reads /proc/stat: the CPUs for which mine is true, or, with
// mine nil, every CPU.
func ReadCPUTimes(mine func(cpu int) bool) (CPUTimes, bool) {
	b, err := ReadFile("/proc/stat")
	if err != nil {
		return CPUTimes{}, false
	}
	return ParseCPUTimes(string(b), mine)
}

// ParseCPUTimes is ReadCPUTimes on the text of /proc/stat.
func ParseCPUTimes(stat string, mine func(cpu int) bool) (CPUTimes, bool) {
	var t CPUTimes
	for line := range strings.Lines(stat) {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		n, err := strconv.Atoi(f[0][3:])
		if err != nil || (mine != nil && !mine(n)) {
			continue
		}
		var v [8]uint64 // user nice system idle iowait irq softirq steal
		if !parseTicks(v[:], f[1:]) {
			return CPUTimes{}, false
		}
		t.Idle += v[3] + v[4]
		for _, x := range v {
			t.Total += x
		}
		t.CPUs++
	}
	return t, t.CPUs > 0
}

// parseTicks fills v from the first len(v) of a /proc/stat cpu line's
// numbers; fields has at least that many.
func parseTicks(v []uint64, fields []string) bool {
	for i := range v {
		n, err := strconv.ParseUint(fields[i], 10, 64)
		if err != nil {
			return false
		}
		v[i] = n
	}
	return true
}

// pageSize is the unit of /proc/<pid>/stat's rss.
var pageSize = uint64(os.Getpagesize())

// OpenFDs counts the open file descriptors of a process (the entries of
// /proc/<pid>/fd); ok is false when it is gone or not ours to read.
func OpenFDs(pid int) (n int, ok bool) {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	// Since Linux 6.2 the directory's size is the count, which spares
	// reading hundreds of entries for each worker at every scrape;
	// before, and for a process with no descriptors, it is 0.
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err == nil && st.Size > 0 {
		return int(st.Size), true
	}
	n, err := countEntries(dir)
	return n, err == nil
}

// TreeCPU is the CPU time (user + system) of pid and of its descendants
// that its threads started and that still run, found through
// /proc/<pid>/task/<tid>/children: cheap enough to ask often, unlike Tree,
// which reads every process. ok is false when pid is gone. Children that
// ended count only once their parent reaped them (the kernel adds them to
// the parent's own times then).
func TreeCPU(pid int) (cpu time.Duration, ok bool) {
	st, ok := ReadStat(pid)
	if !ok {
		return 0, false
	}
	cpu = st.CPU
	seen := map[int]bool{pid: true}
	queue := []int{pid}
	for len(queue) > 0 && len(seen) < 4096 {
		p := queue[0]
		queue = queue[1:]
		tasks, err := os.ReadDir("/proc/" + strconv.Itoa(p) + "/task")
		if err != nil {
			continue
		}
		for _, t := range tasks {
			b, err := ReadFile("/proc/" + strconv.Itoa(p) + "/task/" + t.Name() + "/children")
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(string(b)) {
				c, err := strconv.Atoi(f)
				if err != nil || seen[c] {
					continue
				}
				seen[c] = true
				if cs, ok := ReadStat(c); ok {
					cpu += cs.CPU
					queue = append(queue, c)
				}
			}
		}
	}
	return cpu, true
}
