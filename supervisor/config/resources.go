package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// MinMemory is the smallest memory limit accepted: below it no worker
// starts, and the kernel's OOM killer would end it before it says why.
const MinMemory = 1 << 20

// sizeUnits are the units a size may be written with, case-insensitive.
// Every one is a power of 1024, as in Watt's size strings (its
// maxHeapTotal) and Node.js: "512MB", "512MiB" and "512m" are all
// 536,870,912 bytes. One rule for every size in watt.json, so the same
// string never means two amounts in one file.
var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
	"t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40,
}

var sizeForm = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)$`)

// parseSize reads a size given as a number of bytes or as a string with a
// unit; the message says what is wrong, or is "".
func parseSize(raw json.RawMessage) (int64, string) {
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		// JSON writes whole numbers as 2e9 too (Watt reads that as
		// 2,000,000,000 bytes), and a number beyond int64 is too large,
		// not fractional.
		f, err := strconv.ParseFloat(n.String(), 64)
		v, ierr := strconv.ParseInt(n.String(), 10, 64)
		switch {
		case err != nil || math.Abs(f) >= 1<<62:
			return 0, fmt.Sprintf("%s bytes is out of range", n)
		case ierr == nil:
			return v, ""
		case f != math.Trunc(f):
			return 0, fmt.Sprintf("%s is not a whole number of bytes", n)
		}
		return int64(f), ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, "expected a size: a number of bytes or a string such as \"512MiB\""
	}
	m := sizeForm.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Sprintf("invalid size %q: expected a number and a unit, such as \"512MiB\" or \"1.5GB\"", s)
	}
	mult, ok := sizeUnits[strings.ToLower(m[2])]
	if !ok {
		return 0, fmt.Sprintf("invalid size %q: %s", s, unitHint(m[1], m[2]))
	}
	f, _ := strconv.ParseFloat(m[1], 64)
	bytes := math.Floor(f * mult)
	if bytes >= 1<<62 {
		return 0, fmt.Sprintf("size %q is too large", s)
	}
	return int64(bytes), ""
}

// ParseSize reads a size written as in watt.json ("512KiB", "1.5MB",
// "4096"), for command-line flags.
func ParseSize(s string) (int64, error) {
	raw, err := json.Marshal(s)
	if err != nil {
		return 0, err
	}
	n, msg := parseSize(raw)
	if msg != "" {
		return 0, errors.New(msg)
	}
	return n, nil
}

// unitHint says which unit was probably meant.
func unitHint(num, unit string) string {
	switch strings.ToLower(unit) {
	case "ki", "mi", "gi", "ti":
		return fmt.Sprintf("did you mean %s%sB?", num, unit)
	}
	return fmt.Sprintf("unknown unit %q; use B, KB, MB, GB or TB (each a power of 1024; KiB, MiB, GiB, TiB are the same)", unit)
}

// resolveResources applies one "resources" object at ptr over base. The
// memoryHigh ≤ memory check runs on the result, and only when this object
// set one of the two, so a runtime-level conflict is reported once, at
// the runtime level.
func resolveResources(base Resources, raw *rawResources, ptr string) (Resources, []issue) {
	r := base
	var problems []issue
	size := func(key string, v json.RawMessage, dst *int64) {
		if len(v) == 0 {
			return
		}
		n, msg := parseSize(v)
		if msg == "" && n < MinMemory {
			msg = fmt.Sprintf("%s is %d bytes; at least 1MiB (%d bytes) is needed to start a worker", key, n, MinMemory)
		}
		if msg != "" {
			problems = append(problems, issuef(ptr+"/"+key, "%s", msg))
			return
		}
		*dst = n
	}
	size("memory", raw.Memory, &r.Memory)
	size("memoryHigh", raw.MemoryHigh, &r.MemoryHigh)
	if raw.CPUs != nil {
		if f, err := raw.CPUs.Float64(); err == nil {
			r.CPUs = f
		} else {
			problems = append(problems, issuef(ptr+"/cpus", "expected a number of CPUs, got %s", raw.CPUs))
		}
	}
	if raw.Pids != nil {
		// 100.0 and 1e2 are whole numbers too, which JSON Schema's
		// "integer" (and so the schema check) accepts.
		if n, err := raw.Pids.Int64(); err == nil {
			r.Pids = n
		} else if f, err := raw.Pids.Float64(); err == nil && f == math.Trunc(f) && math.Abs(f) <= 1<<53 {
			r.Pids = int64(f)
		} else {
			problems = append(problems, issuef(ptr+"/pids", "expected a whole number of processes, got %s", raw.Pids))
		}
	}
	if len(problems) == 0 && (len(raw.Memory) > 0 || len(raw.MemoryHigh) > 0) {
		if msg := checkResources(r); msg != "" {
			at := ptr + "/memoryHigh"
			if len(raw.MemoryHigh) == 0 {
				at = ptr + "/memory"
			}
			problems = append(problems, issuef(at, "%s", msg))
		}
	}
	return r, problems
}

// checkResources holds what the schema cannot: the relation between keys
// and limits reaching the Config by other routes.
func checkResources(r Resources) string {
	switch {
	case r.Memory < 0 || r.MemoryHigh < 0 || r.Pids < 0 || r.CPUs < 0:
		return "limits cannot be negative"
	case r.Memory > 0 && r.MemoryHigh > r.Memory:
		return fmt.Sprintf("memoryHigh (%s) is above memory (%s): the hard limit would be reached first and memoryHigh never", formatSize(r.MemoryHigh), formatSize(r.Memory))
	}
	return ""
}

// checkCgroupRoot requires an absolute path: a cgroup path relative to the
// working directory would be a surprise, and ':' separates paths where
// wattd passes them to the exec helper.
func checkCgroupRoot(root string) string {
	switch {
	case root == "":
		return ""
	case !filepath.IsAbs(root):
		return fmt.Sprintf("%q is not an absolute path; cgroup directories are under /sys/fs/cgroup", root)
	case strings.Contains(root, ":"):
		return fmt.Sprintf("%q contains ':', which wattd cannot pass to its exec helper", root)
	}
	return ""
}

// formatSize writes bytes with the largest binary unit that divides them.
func formatSize(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}
