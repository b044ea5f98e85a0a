package v8profile

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// SourceMaps maps the call frames of code that was compiled (TypeScript,
// a bundler's output) back to its sources, by the source map that the
// script names in its last sourceMappingURL comment (a file beside it, or
// inline as a data: URL). Scripts under node_modules are left as they
// are (their maps, when shipped, often point at sources that are not), as
// are scripts without a map and positions a map does not cover. A frame
// that is mapped keeps V8's function name unless the map names the
// function at its start.
type SourceMaps struct {
	read  func(path string) ([]byte, error)
	maps  map[string]*sourceMap // by script path; nil when it has none
	Found int                   // maps read
}

// maxMapBytes bounds what is read of a script or a map.
const maxMapBytes = 64 << 20

// NewSourceMaps reads scripts and maps from the file system.
func NewSourceMaps() *SourceMaps {
	return &SourceMaps{read: readLimited, maps: map[string]*sourceMap{}}
}

// readLimited reads a regular file of at most maxMapBytes. The paths come
// from the worker's profile, which the worker wrote: one naming a FIFO or
// a device must not hold wattd up (the open does not wait, and only a
// regular file is read).
func readLimited(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxMapBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxMapBytes {
		return nil, fmt.Errorf("%s: over %d bytes", path, maxMapBytes)
	}
	return b, nil
}

// Map returns cf where its script's source map puts it, or cf as it is.
func (s *SourceMaps) Map(cf CallFrame) CallFrame {
	if s == nil || cf.LineNumber < 0 || cf.ColumnNumber < 0 {
		return cf
	}
	script := scriptPath(cf.URL)
	if script == "" || slices.Contains(strings.Split(filepath.ToSlash(script), "/"), "node_modules") {
		return cf
	}
	m, seen := s.maps[script]
	if !seen {
		m = s.load(script)
		s.maps[script] = m
		if m != nil {
			s.Found++
		}
	}
	if m == nil {
		return cf
	}
	seg, ok := m.find(int(cf.LineNumber), int(cf.ColumnNumber))
	if !ok {
		return cf
	}
	out := cf
	out.URL = m.sources[seg.src]
	out.LineNumber, out.ColumnNumber = int64(seg.srcLine), int64(seg.srcCol)
	if seg.name >= 0 {
		out.FunctionName = m.names[seg.name]
	}
	return out
}

// scriptPath is the file a V8 script URL names: an absolute path (a
// CommonJS module) or a file: URL (an ES module); "" for anything else
// (node: internals, eval'd code).
func scriptPath(u string) string {
	if strings.HasPrefix(u, "file://") {
		p, err := url.Parse(u)
		if err != nil || p.Path == "" {
			return ""
		}
		return filepath.FromSlash(p.Path)
	}
	if filepath.IsAbs(u) {
		return u
	}
	return ""
}

// load reads the map of script; nil when it has none or it cannot be read.
func (s *SourceMaps) load(script string) *sourceMap {
	src, err := s.read(script)
	if err != nil {
		return nil
	}
	ref := mapReference(src)
	if ref == "" {
		return nil
	}
	var raw []byte
	base := filepath.Dir(script)
	if rest, ok := strings.CutPrefix(ref, "data:"); ok {
		meta, data, ok := strings.Cut(rest, ",")
		if !ok || !strings.HasSuffix(meta, ";base64") {
			return nil
		}
		if raw, err = base64.StdEncoding.DecodeString(data); err != nil {
			return nil
		}
	} else {
		p := ref
		if u, err := url.Parse(ref); err == nil && u.Scheme == "file" {
			p = filepath.FromSlash(u.Path)
		} else if err == nil && u.Scheme != "" {
			return nil // http:, webpack: and the like: not here
		} else if unescaped, err := url.PathUnescape(ref); err == nil {
			p = unescaped
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(base, p)
		}
		if raw, err = s.read(p); err != nil {
			return nil
		}
		base = filepath.Dir(p)
	}
	m, err := parseSourceMap(raw, base)
	if err != nil {
		return nil
	}
	return m
}

// mapReference is the URL of the script's last sourceMappingURL comment.
func mapReference(src []byte) string {
	ref := ""
	for _, marker := range [][]byte{[]byte("//# sourceMappingURL="), []byte("//@ sourceMappingURL=")} {
		i := bytes.LastIndex(src, marker)
		if i < 0 {
			continue
		}
		rest := src[i+len(marker):]
		if j := bytes.IndexAny(rest, "\r\n \t"); j >= 0 {
			rest = rest[:j]
		}
		ref = string(rest)
		break
	}
	return ref
}

// sourceMap is a decoded source map (version 3).
type sourceMap struct {
	sources []string
	names   []string
	lines   [][]segment // by generated line, each sorted by column
}

type segment struct {
	col, src, srcLine, srcCol, name int // name -1 when none
}

// find is the segment that covers (line, col): the last one of the line
// that starts at or before col and names a source.
func (m *sourceMap) find(line, col int) (segment, bool) {
	if line >= len(m.lines) {
		return segment{}, false
	}
	segs := m.lines[line]
	i, _ := slices.BinarySearchFunc(segs, col+1, func(s segment, c int) int { return s.col - c })
	for i--; i >= 0; i-- {
		if segs[i].src >= 0 {
			return segs[i], true
		}
	}
	return segment{}, false
}

func parseSourceMap(raw []byte, base string) (*sourceMap, error) {
	var doc struct {
		Version    int      `json:"version"`
		SourceRoot string   `json:"sourceRoot"`
		Sources    []string `json:"sources"`
		Names      []string `json:"names"`
		Mappings   string   `json:"mappings"`
		Sections   []any    `json:"sections"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	if doc.Version != 3 || doc.Sections != nil {
		return nil, errors.New("not a version 3 source map with mappings")
	}
	m := &sourceMap{names: doc.Names}
	for _, src := range doc.Sources {
		m.sources = append(m.sources, sourcePath(doc.SourceRoot, src, base))
	}
	var err error
	if m.lines, err = decodeMappings(doc.Mappings, len(m.sources), len(m.names)); err != nil {
		return nil, err
	}
	return m, nil
}

// sourcePath is where a map's source is: a path resolved from the map's
// directory, or the URL as it is when it is one (webpack://…).
func sourcePath(root, src, base string) string {
	p := src
	if root != "" && !strings.Contains(src, "://") && !filepath.IsAbs(src) {
		p = strings.TrimSuffix(root, "/") + "/" + src
	}
	if u, err := url.Parse(p); err == nil && u.Scheme == "file" {
		return filepath.FromSlash(u.Path)
	}
	if strings.Contains(p, "://") || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(base, filepath.FromSlash(p))
}

// decodeMappings decodes the mappings string: lines separated by ';',
// segments by ',', each of 1, 4 or 5 base64 VLQ fields, all but the
// column of a line relative to the previous segment's.
func decodeMappings(s string, nSources, nNames int) ([][]segment, error) {
	var lines [][]segment
	src, srcLine, srcCol, name := 0, 0, 0, 0
	for _, line := range strings.Split(s, ";") {
		var segs []segment
		col := 0
		for _, field := range strings.Split(line, ",") {
			if field == "" {
				continue
			}
			v, err := decodeVLQ(field)
			if err != nil {
				return nil, err
			}
			switch len(v) {
			case 1, 4, 5:
			default:
				return nil, fmt.Errorf("a segment of %d fields", len(v))
			}
			col += v[0]
			seg := segment{col: col, src: -1, name: -1}
			if len(v) >= 4 {
				src += v[1]
				srcLine += v[2]
				srcCol += v[3]
				if src < 0 || src >= nSources || srcLine < 0 || srcCol < 0 {
					return nil, errors.New("a segment outside the map's sources")
				}
				seg.src, seg.srcLine, seg.srcCol = src, srcLine, srcCol
			}
			if len(v) == 5 {
				name += v[4]
				if name < 0 || name >= nNames {
					return nil, errors.New("a segment outside the map's names")
				}
				seg.name = name
			}
			segs = append(segs, seg)
		}
		slices.SortStableFunc(segs, func(a, b segment) int { return a.col - b.col })
		lines = append(lines, segs)
	}
	return lines, nil
}

const vlqChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// decodeVLQ decodes a segment's base64 VLQ numbers: 5 bits a digit, the
// sixth saying another follows; the lowest bit of a number is its sign.
func decodeVLQ(s string) ([]int, error) {
	var out []int
	value, shift := 0, 0
	for i := 0; i < len(s); i++ {
		d := strings.IndexByte(vlqChars, s[i])
		if d < 0 {
			return nil, fmt.Errorf("%q is not base64", s[i])
		}
		value += (d & 31) << shift
		if d&32 != 0 {
			shift += 5
			if shift > 30 {
				return nil, errors.New("a number too large")
			}
			continue
		}
		n := value >> 1
		if value&1 != 0 {
			n = -n
		}
		out = append(out, n)
		value, shift = 0, 0
	}
	if shift != 0 {
		return nil, errors.New("a number cut short")
	}
	return out, nil
}
