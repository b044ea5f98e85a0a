package config

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestManagementAPI: Watt's managementApi is on unless turned off, its
// socket is taken from the configuration's directory, its logs block is
// warned about, and a wrong value is named by its path.
func TestManagementAPI(t *testing.T) {
	for _, c := range []struct {
		name, value string
		want        ManagementAPI
		warning     string
	}{
		{"absent", "", ManagementAPI{Enabled: true}, ""},
		{"false", `false`, ManagementAPI{}, ""},
		{"the string false", `"false"`, ManagementAPI{}, ""},
		{"an unset placeholder", `"{PLT_UNSET_MANAGEMENT_API}"`, ManagementAPI{}, ""},
		{"true", `true`, ManagementAPI{Enabled: true}, ""},
		{"a socket", `{"socket": "run/m.sock"}`, ManagementAPI{Enabled: true, Socket: "run/m.sock"}, ""},
		{"logs", `{"logs": {"maxSize": 10}}`, ManagementAPI{Enabled: true}, `/managementApi/logs: Watt option "logs" is not supported`},
	} {
		t.Run(c.name, func(t *testing.T) {
			key := ""
			if c.value != "" {
				key = `"managementApi": ` + c.value + `,`
			}
			dir := writeProject(t, map[string]string{"watt.json": `{` + key + `"applications": [{"id": "web", "path": "./web"}]}`, "web/index.js": ""})
			cfg, err := Load(dir, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			want := c.want
			if want.Socket != "" {
				want.Socket = filepath.Join(cfg.Dir, want.Socket)
			}
			if cfg.ManagementAPI != want {
				t.Errorf("got %+v, want %+v", cfg.ManagementAPI, want)
			}
			warned := strings.Join(cfg.Warnings, "\n")
			if c.warning != "" && !strings.Contains(warned, c.warning) {
				t.Errorf("warnings %q lack %q", warned, c.warning)
			}
		})
	}
	_, err := Load(writeProject(t, map[string]string{"watt.json": `{"managementApi": "maybe", "applications": [{"id": "web", "path": "./web"}]}`, "web/index.js": ""}), "", nil)
	if err == nil || !strings.Contains(err.Error(), `/managementApi: expected true, false or an object, got "maybe"`) {
		t.Errorf("err = %v", err)
	}
}
