// Package cgroups contains wattd's workers: each worker process gets a
// cgroup of its own with the application's memory, memory-high, CPU and
// pids limits, so an OOM, a fork bomb or a CPU hog stays inside one
// worker, and stopping the worker kills everything it started (detached
// and setsid children included). It speaks cgroup v2 and v1, and when
// neither can be written it says so once and falls back to /proc.
//
// # Layout
//
// A Manager owns one runtime's subtree, named by Options.Name (the
// runtime directory's name, project name plus a hash of its path), under
// a root:
//
//	v2: <root>/<name>/<app>.<index>.<gen>       one directory, controllers
//	                                            memory cpu pids enabled on
//	                                            the way down
//	v1: <mount>/<ctrl>/<rel>/<name>/<app>.<index>.<gen>   for ctrl in
//	                                            memory cpu pids freezer
//	                                            (+ cpuacct when separate)
//
// <gen> grows with every worker process the runtime starts, so a
// replacement running beside the old worker during a rolling restart never
// shares its group. The default root is, on v2, wattd's own cgroup when it
// was delegated (systemd Delegate=yes sets the trusted.delegate or
// user.delegate attribute; a non-root owner of the directory counts too),
// else <mount>/wattd; on v1 wattd's own memory cgroup when it was
// delegated (the mark is on systemd's own hierarchy there), else
// /sys/fs/cgroup/memory/wattd, the same relative path being used in the
// other controllers' hierarchies. On v2, a cgroup
// with processes in it cannot hand controllers to children, so when wattd
// sits in the cgroup it must enable them in, it moves itself into a
// "supervisor" leaf beside the runtime subtrees first.
//
// # Joining before the first instruction
//
// Workers start through wattd's exec helper (wattd re-executed with
// argv[1] "__wattd-exec"). The spawner adds Group.JoinEnv to the helper's
// environment; the helper joins the group first thing (on v1 its thread
// that execs, "0" into each hierarchy's tasks; on v2 its pid into the
// directory's cgroup.procs; see package exechelper) and only then execs
// the worker, so no instruction of the worker runs outside its limits.
// JoinFromEnv moves a whole process, for one that goes on running. A
// Node.js worker on v2 is cloned into its group instead (Group.CgroupFD as
// SysProcAttr.CgroupFD with UseCgroupFD; see Group.DirectStart).
//
// # Why not containerd/cgroups
//
// The library the design first named, github.com/containerd/cgroups/v3,
// brings cilium/ebpf, godbus, go-systemd, runtime-spec, logrus and
// protobuf into wattd for what is here a few hundred lines of file writes,
// has no whole-group kill on v1 (freeze, kill every pid, thaw is left to
// the caller) and has no way to join from inside an exec helper without
// its own process bookkeeping. The file formats used are the kernel's
// (Documentation/admin-guide/cgroup-v2.rst and cgroup-v1/*.rst).
//
// # Fallback
//
// When cgroups cannot be used (not root, a read-only or unprivileged
// cgroup filesystem, v2 without the memory, cpu and pids controllers
// delegated, no cgroup filesystem at all) Open returns a Manager in
// fallback mode and Warning names what is missing and what to do. Groups
// still work: JoinEnv marks the worker's environment with WATTD_GROUP,
// which every descendant inherits, and Kill kills the worker's process
// group, every process below it (procnet.Tree) and every process still
// carrying the mark, so setsid and detached children are found through
// /proc. Limits are not enforced by the kernel then: the caller polls
// Stats (the RSS of the worker's tree) and restarts a worker above
// Limits.Memory (Group.Enforced says which limits the kernel holds).
//
// # Wiring (for the supervisor)
//
//	m, err := cgroups.Open(cgroups.Options{Root: cfg.Cgroups.Root, Name: runtimeDirName, Logger: log})
//	if w := m.Warning(); w != "" { log.Warn(w) }       // once, at start
//	// per worker process (a replacement gets its own):
//	g, err := m.Worker(app.ID, index, cgroups.Limits(app.Resources))
//	cmd.Env = append(cmd.Env, g.JoinEnv()...)          // before Start
//	g.Bind(cmd.Process.Pid)                            // after Start
//	// exec helper, before it execs the worker:
//	//   if err := cgroups.JoinFromEnv(); err != nil { print it; os.Exit(127) }
//	// while it runs: g.Stats() for ctl ps; when !g.Enforced(), poll
//	//   g.OverMemory() and restart with the reason "memory" when true
//	// on stop or replace, once the worker exited:
//	g.Kill(); oom, _ := g.OOMKilled() /* reason "oom" */; g.Remove()
//	m.Close()                                          // when wattd exits
//
// Open sweeps what a previous instance with the same Name left behind
// (after a kill -9 of wattd), so it must be called only while holding the
// runtime's single-instance lock, and before the runtime binds its ports.
package cgroups
