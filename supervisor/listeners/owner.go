package listeners

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// SO_REUSEPORT lets any socket of the same user join a listening group, and
// the kernel then spreads connections over every member, wattd's or not. So
// before wattd opens its group it looks for listeners it does not own on the
// address; the kernel's own table (/proc/net/tcp and tcp6) names each
// listening socket by inode, and /proc/<pid>/fd links name the inode's
// holders.

// Holder is a listening TCP socket on the machine (in wattd's network
// namespace).
type Holder struct {
	Addr    netip.AddrPort
	Inode   uint64
	PID     int    // 0 when no process of ours can see it (another user's, or gone)
	Command string // the holder's command line, shortened
}

func (h Holder) String() string {
	if h.PID == 0 {
		return fmt.Sprintf("a socket on %s (socket inode %d; its process is not visible to this user)", h.Addr, h.Inode)
	}
	return fmt.Sprintf("pid %d (%s) on %s", h.PID, h.Command, h.Addr)
}

// ErrPortHeld is returned when a socket wattd does not own listens on the
// address wattd is to serve.
var ErrPortHeld = errors.New("port is in use by another program")

// PortHeldError names who holds the port.
type PortHeldError struct {
	Addr    string
	Holders []Holder
}

func (e *PortHeldError) Error() string {
	names := make([]string, len(e.Holders))
	for i, h := range e.Holders {
		names[i] = h.String()
	}
	return fmt.Sprintf("%s is already in use: %s. Stop that program, choose another port, or set \"reuseTcpPorts\": true in watt.json to share the port with it on purpose",
		e.Addr, strings.Join(names, "; "))
}

func (e *PortHeldError) Unwrap() error { return ErrPortHeld }

// CheckFree returns a *PortHeldError when a listening TCP socket other than
// those in own overlaps host:port: the same port on the same address, or
// either side bound to the wildcard address.
func CheckFree(host string, port int, own map[uint64]bool) error {
	addrs, err := resolve(host)
	if err != nil {
		return err
	}
	held, err := listening(port)
	if err != nil {
		return err
	}
	var foreign []Holder
	for _, h := range held {
		if own[h.Inode] || !overlapsAny(h.Addr.Addr(), addrs) {
			continue
		}
		foreign = append(foreign, h)
	}
	if len(foreign) == 0 {
		return nil
	}
	findHolders(foreign)
	return &PortHeldError{Addr: net.JoinHostPort(host, strconv.Itoa(port)), Holders: foreign}
}

// Inode returns the inode of the socket f, the number the kernel's tables
// use for it.
func Inode(f *os.File) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// resolve turns the configured host name into the addresses a listen on it
// may cover; an empty host is the wildcard.
func resolve(host string) ([]netip.Addr, error) {
	if host == "" {
		return []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()}, nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	out := make([]netip.Addr, 0, len(ips))
	for _, ip := range ips {
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, a.Unmap())
		}
	}
	return out, nil
}

func overlapsAny(a netip.Addr, addrs []netip.Addr) bool {
	a = a.Unmap()
	for _, b := range addrs {
		if a == b || a.IsUnspecified() || b.IsUnspecified() {
			return true
		}
	}
	return false
}

// listening reads the listening TCP sockets on port from the kernel's
// tables.
func listening(port int) ([]Holder, error) {
	var out []Holder
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		hs, err := readTable(table, port)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && table == "/proc/net/tcp6" {
				continue // a kernel without IPv6
			}
			return nil, fmt.Errorf("read %s: %w", table, err)
		}
		out = append(out, hs...)
	}
	return out, nil
}

// tcpListen is the state code of a listening socket in /proc/net/tcp.
const tcpListen = "0A"

func readTable(path string, port int) ([]Holder, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Holder
	sc := bufio.NewScanner(f)
	sc.Scan() // the header
	for sc.Scan() {
		h, ok := parseTableLine(sc.Text())
		if ok && int(h.Addr.Port()) == port {
			out = append(out, h)
		}
	}
	return out, sc.Err()
}

// parseTableLine reads one line of /proc/net/tcp{,6}:
//
//	sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …
//
// and keeps listening sockets only.
func parseTableLine(line string) (Holder, bool) {
	f := strings.Fields(line)
	if len(f) < 10 || f[3] != tcpListen {
		return Holder{}, false
	}
	hostHex, portHex, ok := strings.Cut(f[1], ":")
	if !ok {
		return Holder{}, false
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return Holder{}, false
	}
	addr, ok := parseHexAddr(hostHex)
	if !ok {
		return Holder{}, false
	}
	inode, err := strconv.ParseUint(f[9], 10, 64)
	if err != nil {
		return Holder{}, false
	}
	return Holder{Addr: netip.AddrPortFrom(addr, uint16(port)), Inode: inode}, true
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

// findHolders fills in the process of each socket by looking for its inode
// among the open files of every process this user may inspect.
func findHolders(hs []Holder) {
	want := make(map[string]int, len(hs))
	for i, h := range hs {
		want["socket:["+strconv.FormatUint(h.Inode, 10)+"]"] = i
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range procs {
		pid, err := strconv.Atoi(filepath.Base(dir))
		if err != nil {
			continue
		}
		fds, err := os.ReadDir(dir + "/fd")
		if err != nil {
			continue
		}
		for _, fd := range fds {
			link, err := os.Readlink(dir + "/fd/" + fd.Name())
			if err != nil {
				continue
			}
			if i, ok := want[link]; ok && hs[i].PID == 0 {
				hs[i].PID, hs[i].Command = pid, commandOf(pid)
			}
		}
	}
}

// commandOf returns a process's command line, shortened for a message.
func commandOf(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(b) == 0 {
		return "?"
	}
	// Arguments are NUL-separated and may hold newlines (a script given
	// with -c): one line of words reads better in a message.
	cmd := strings.Join(strings.Fields(strings.ReplaceAll(string(b), "\x00", " ")), " ")
	if len(cmd) > 80 {
		cmd = cmd[:77] + "..."
	}
	return cmd
}
