package procnet

import (
	"net"
	"os"
	"testing"
)

func TestParseTableLine(t *testing.T) {
	tests := []struct {
		line string
		want string // address; "" for a line that is not a listener
	}{
		{"   0: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0", "127.0.0.1:3000"},
		{"   1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 17 1 0", "0.0.0.0:8080"},
		{"   2: 0100007F:0BB8 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 99 1 0", ""}, // established
		{"   0: 00000000000000000000000001000000:0BB8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5 1 0", "[::1]:3000"},
		{"   0: 0000000000000000FFFF00000100007F:0BB8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 6 1 0", "127.0.0.1:3000"}, // v4-mapped
		{"garbage", ""},
	}
	for _, tt := range tests {
		h, ok := parseLine(tt.line)
		if tt.want == "" {
			if ok {
				t.Errorf("%q: parsed as a listener %v", tt.line, h)
			}
			continue
		}
		if !ok || h.Addr.String() != tt.want {
			t.Errorf("%q: got %v %v, want %s", tt.line, h.Addr, ok, tt.want)
		}
	}
}

func TestListeningAndHolders(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	socks, err := Listening(port)
	if err != nil || len(socks) != 1 || socks[0].Addr.String() != l.Addr().String() {
		t.Fatalf("Listening(%d) = %v, %v", port, socks, err)
	}
	ino := socks[0].Inode
	if !SocketsOf([]int{os.Getpid()})[ino] {
		t.Fatal("this process's socket is not among its sockets")
	}
	h, ok := Holders([]uint64{ino})[ino]
	if !ok || h.PID != os.Getpid() || h.Command == "" {
		t.Fatalf("holder %+v %v, want this process", h, ok)
	}
	tree := Tree(os.Getpid())
	found := false
	for _, pid := range tree {
		found = found || pid == os.Getpid()
	}
	if !found {
		t.Fatalf("Tree(self) = %v lacks self", tree)
	}
}

func TestParseCPUTimes(t *testing.T) {
	const stat = "cpu  30 0 30 300 10 0 0 0 0 0\n" +
		"cpu0 10 0 10 100 5 0 0 0 0 0\n" +
		"cpu1 20 0 20 200 5 0 0 0 0 0\n" +
		"intr 12345 1 2 3\n" +
		"cpu9z 1 1 1 1 1 1 1 1\n"
	all, ok := ParseCPUTimes(stat, nil)
	if !ok || all != (CPUTimes{Idle: 310, Total: 370, CPUs: 2}) {
		t.Fatalf("every CPU: %+v, %v", all, ok)
	}
	one, ok := ParseCPUTimes(stat, func(cpu int) bool { return cpu == 1 })
	if !ok || one != (CPUTimes{Idle: 205, Total: 245, CPUs: 1}) {
		t.Fatalf("cpu1 only: %+v, %v", one, ok)
	}
	if _, ok := ParseCPUTimes(stat, func(cpu int) bool { return cpu == 7 }); ok {
		t.Fatal("no CPU of the set in the file, yet ok")
	}
	if _, ok := ParseCPUTimes("cpu0 1 2 x 4 5 6 7 8\n", nil); ok {
		t.Fatal("a bad number, yet ok")
	}
	if got, ok := ReadCPUTimes(nil); !ok || got.CPUs < 1 || got.Total == 0 {
		t.Fatalf("this machine's /proc/stat: %+v, %v", got, ok)
	}
}
