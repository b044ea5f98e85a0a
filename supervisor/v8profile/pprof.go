package v8profile

import (
	"strconv"
	"strings"

	"github.com/google/pprof/profile"
)

// CallFrame is where a node's code is: lines and columns count from 0,
// -1 when unknown.
type CallFrame struct {
	FunctionName string `json:"functionName"`
	URL          string `json:"url"`
	LineNumber   int64  `json:"lineNumber"`
	ColumnNumber int64  `json:"columnNumber"`
}

// locations makes one pprof function per V8 function (name, script,
// line) and one location per call frame, added to out as they come.
type locations struct {
	out   *profile.Profile
	maps  *SourceMaps // nil: frames as V8 gave them
	funcs map[string]*profile.Function
	locs  map[string]*profile.Location
}

func newLocations(out *profile.Profile, maps *SourceMaps) *locations {
	return &locations{out: out, maps: maps, funcs: map[string]*profile.Function{}, locs: map[string]*profile.Location{}}
}

// of is the location of cf (where its source map puts it, with maps);
// pprof counts lines and columns from 1.
func (ls *locations) of(cf CallFrame) *profile.Location {
	cf = ls.maps.Map(cf)
	name := cf.FunctionName
	if name == "" {
		name = "(anonymous)"
	}
	fkey := name + "\x00" + cf.URL + "\x00" + strconv.FormatInt(cf.LineNumber, 10)
	f := ls.funcs[fkey]
	if f == nil {
		f = &profile.Function{ID: uint64(len(ls.out.Function) + 1), Name: name, SystemName: name, Filename: cf.URL, StartLine: cf.LineNumber + 1}
		ls.funcs[fkey] = f
		ls.out.Function = append(ls.out.Function, f)
	}
	lkey := fkey + "\x00" + strconv.FormatInt(cf.ColumnNumber, 10)
	l := ls.locs[lkey]
	if l == nil {
		l = &profile.Location{ID: uint64(len(ls.out.Location) + 1), Line: []profile.Line{{Function: f, Line: cf.LineNumber + 1, Column: cf.ColumnNumber + 1}}}
		ls.locs[lkey] = l
		ls.out.Location = append(ls.out.Location, l)
	}
	return l
}

// stackKey names a stack by its locations, to merge samples.
func stackKey(stack []*profile.Location) string {
	var key strings.Builder
	for _, l := range stack {
		key.WriteString(strconv.FormatUint(l.ID, 36))
		key.WriteByte(',')
	}
	return key.String()
}
