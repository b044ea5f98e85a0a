package cgroups

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wattd/wattd/supervisor/procnet"
)

// RSS reads a process's resident set size from /proc (the rss field of
// its stat line, as procnet.ReadStat parses it); 0 if it is gone.
func RSS(pid int) uint64 {
	st, ok := procnet.ReadStat(pid)
	if !ok {
		return 0
	}
	return st.RSS
}

// TreeRSS sums the resident set sizes of root's process tree
// (procnet.Tree): what fallback mode compares with the memory limit.
// Shared pages are counted once per process, so it errs high.
func TreeRSS(root int) uint64 {
	var sum uint64
	for _, pid := range procnet.Tree(root) {
		sum += RSS(pid)
	}
	return sum
}

// treeUsage is fallback mode's Stats: memory, process count and CPU time
// of the worker's tree.
func treeUsage(root int) (mem, n uint64, cpu time.Duration) {
	if root <= 0 {
		return 0, 0, 0
	}
	for _, pid := range procnet.Tree(root) {
		st, ok := procnet.ReadStat(pid)
		if !ok || st.State == 'Z' {
			continue
		}
		mem += st.RSS
		n++
		cpu += st.CPU
	}
	return mem, n, cpu
}

// marked returns the processes whose environment holds EnvGroup with a
// value matching prefix, except those in skip (values) and, for a prefix
// naming a runtime, those of another wattd that is running (liveInstance).
// A process that rewrote its environment is missed; that is why the tree
// and the process group are searched too.
func marked(prefix string, skip map[string]bool) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	needle := []byte(EnvGroup + "=" + prefix)
	self := os.Getpid()
	uid := uint32(os.Geteuid())
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		// wattd starts its workers as its own user: another user's
		// process with the mark is another user's wattd's (root reads
		// every environment).
		var st unix.Stat_t
		if unix.Stat("/proc/"+e.Name(), &st) != nil || st.Uid != uid {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			// A mark ending in '/' names a runtime and matches its
			// groups; otherwise it names one group exactly (api.0.1 must
			// not match api.0.10).
			if bytes.HasPrefix(kv, needle) && (strings.HasSuffix(prefix, "/") || len(kv) == len(needle)) {
				mark := string(kv[len(EnvGroup)+1:])
				_, instance, _ := strings.Cut(mark, "@")
				if !skip[mark] && !(strings.HasSuffix(prefix, "/") && liveInstance(instance)) {
					out = append(out, pid)
				}
				break
			}
		}
	}
	return out
}

// killMarked kills every process marked with prefix except the groups in
// skip, until none is left; it returns how many it found.
func killMarked(prefix string, skip map[string]bool) (int, error) {
	seen := map[int]bool{}
	deadline := time.Now().Add(killTimeout)
	for {
		var live []int
		for _, pid := range marked(prefix, skip) {
			if st, ok := procnet.ReadStat(pid); ok && st.State != 'Z' {
				live = append(live, pid)
				seen[pid] = true
			}
		}
		if len(live) == 0 {
			return len(seen), nil
		}
		if time.Now().After(deadline) {
			return len(seen), fmt.Errorf("processes marked %s%s still alive after SIGKILL: %v", EnvGroup+"=", prefix, live)
		}
		killAll(live)
		time.Sleep(10 * time.Millisecond)
	}
}

// killTree is fallback mode's whole-tree kill: SIGKILL to root's process
// group, to every process below root or in its group (procnet.Tree), and
// to every process marked with mark, repeated until none is left, so a
// child forked while the others were being killed is caught next round.
// It returns how many processes it killed.
func killTree(root int, mark string) (int, error) {
	seen := map[int]bool{}
	deadline := time.Now().Add(killTimeout)
	for {
		live := map[int]bool{}
		if root > 0 && ours(root, mark) {
			_ = syscall.Kill(-root, syscall.SIGKILL)
			for _, pid := range procnet.Tree(root) {
				live[pid] = true
			}
		}
		for _, pid := range marked(mark, nil) {
			live[pid] = true
		}
		var pids []int
		for pid := range live {
			if st, ok := procnet.ReadStat(pid); ok && st.State != 'Z' && pid != os.Getpid() {
				pids = append(pids, pid)
				seen[pid] = true
			}
		}
		if len(pids) == 0 {
			return len(seen), nil
		}
		if time.Now().After(deadline) {
			return len(seen), errors.New("processes still alive after SIGKILL: " + fmt.Sprint(pids))
		}
		killAll(pids)
		time.Sleep(10 * time.Millisecond)
	}
}

// ours reports whether pid still names the worker: its process (a zombie
// counts, its pid cannot be reused yet) carries the mark, or it is gone,
// in which case the pid survives only as the process group id of the
// worker's children, which the kernel does not hand out again while the
// group has members. A live unmarked process is a stranger with a
// reused pid.
func ours(pid int, mark string) bool {
	st, ok := procnet.ReadStat(pid)
	if !ok || st.State == 'Z' {
		return true
	}
	env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	for _, kv := range bytes.Split(env, []byte{0}) {
		if string(kv) == EnvGroup+"="+mark {
			return true
		}
	}
	return false
}
