package secrets

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestIsSecretName(t *testing.T) {
	secret := []string{
		"API_KEY", "api_key", "apiKey", "ApiKey", "KEY", "STRIPE_SECRET", "client_secret",
		"DB_PASSWORD", "dbPassword", "PGPASSWORD", "MYSQL_PASSWD", "GITHUB_TOKEN", "GITHUBTOKEN",
		"AUTH", "BASIC_AUTH", "Authorization", "AWS_ACCESS_KEY_ID", "PRIVATE_KEY_PEM",
		"SENTRY_DSN", "GOOGLE_APPLICATION_CREDENTIALS", "AZURE_CONNECTION_STRING",
		"DATABASE_URL", "database-url", "SESSION_COOKIE", "PASSWORD_SALT", "ssh.passphrase",
		"JWT", "jwtKey", "X_BEARER", "SESSION_SIG",
	}
	for _, n := range secret {
		if !IsSecretName(n) {
			t.Errorf("IsSecretName(%q) = false, want true", n)
		}
	}
	plain := []string{
		"PORT", "NODE_ENV", "HOME", "PATH", "PWD", "KEYBOARD_LAYOUT", "AUTHOR", "AUTHOR_NAME",
		"MONKEY", "DATABASE_HOST", "CONNECTION_TIMEOUT", "PLT_APP", "WATTD_APP", "LANG", "",
		"SIGNAL_NAME", "KILL_SIGNAL", "JWT_ISSUER", "SIG_ALGORITHM",
	}
	for _, n := range plain {
		if IsSecretName(n) {
			t.Errorf("IsSecretName(%q) = true, want false", n)
		}
	}
}

func TestValueMasksURLPasswordsUnderAnyName(t *testing.T) {
	got := Value("PRIMARY_DB", "postgres://app:s3cr3t@db.internal:5432/main?sslmode=disable")
	if strings.Contains(got, "s3cr3t") || !strings.Contains(got, "app:") || !strings.Contains(got, "db.internal:5432/main") {
		t.Errorf("Value = %q: want the password masked and the rest kept", got)
	}
	for _, v := range []string{"http://example.com/a@b", "https://user@host/", "plain", "a@b.c"} {
		if got := Value("X", v); got != v {
			t.Errorf("Value(%q) = %q, want it unchanged (no password)", v, got)
		}
	}
	if got := Value("API_KEY", "abc"); got != Masked {
		t.Errorf("Value(API_KEY) = %q, want %q", got, Masked)
	}
}

func TestEnviron(t *testing.T) {
	got := Environ([]string{"PORT=3000", "API_KEY=k-123", "DB_PASSWORD=hunter2", "EMPTY=", "odd"})
	want := []string{"PORT=3000", "API_KEY=" + Masked, "DB_PASSWORD=" + Masked, "EMPTY=", "odd"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Environ = %q, want %q", got, want)
	}
}

func TestTree(t *testing.T) {
	type app struct {
		ID      string
		Env     map[string]string
		Timeout time.Duration
		Secret  string
		Tags    []string
		skip    string
		Ignored string `json:"-"`
	}
	type cfg struct {
		Apps    []app
		Headers map[string]string
		Ptr     *app
	}
	c := cfg{
		Apps: []app{{ID: "api", Env: map[string]string{"API_KEY": "k", "MODE": "x", "URL": "redis://:pw@r:6379"},
			Timeout: 30 * time.Second, Secret: "s", Tags: []string{"a"}, skip: "hidden", Ignored: "no"}},
		Headers: map[string]string{"Authorization": "Bearer t", "Accept": "json", "x-honeycomb-team": "hc-key"},
	}
	data, err := json.Marshal(Tree(c))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for _, leak := range []string{`"k"`, `"s"`, "Bearer", ":pw@", "hidden", "Ignored", "hc-key", `"json"`} {
		if strings.Contains(s, leak) {
			t.Errorf("tree leaks %s: %s", leak, s)
		}
	}
	for _, keep := range []string{`"MODE":"x"`, `"Timeout":"30s"`, `"Accept":"[redacted]"`, `"x-honeycomb-team":"[redacted]"`, `"ID":"api"`, `"Tags":["a"]`, `"Ptr":null`, `"API_KEY":"[redacted]"`} {
		if !strings.Contains(s, keep) {
			t.Errorf("tree lacks %s: %s", keep, s)
		}
	}
}

// TestValueMasksURLPasswordsURLParseRejects covers the values url.Parse
// fails on or reads as one URL: each used to be shown whole.
func TestValueMasksURLPasswordsURLParseRejects(t *testing.T) {
	cases := map[string]string{
		"redis://:pw1@h1:6379,redis://:pw2@h2:6379":   "redis://:[redacted]@h1:6379,redis://:[redacted]@h2:6379",
		`{"db":"postgres://u:pw1@h/db","n":1}`:        `{"db":"postgres://u:[redacted]@h/db","n":1}`,
		"--db=postgres://u:pw1@h/db --x":              "--db=postgres://u:[redacted]@h/db --x",
		"postgres://u:p%zz@h/db":                      "postgres://u:[redacted]@h/db",
		"postgres://u:pa/ss@h/db":                     "postgres://u:[redacted]@h/db",
		"postgres://u:pa#ss@h/db":                     "postgres://u:[redacted]@h/db",
		"postgres://u:pa?ss@h/db":                     "postgres://u:[redacted]@h/db",
		"postgres://u:p@ss@h/db":                      "postgres://u:[redacted]@h/db",
		"amqp://u:pw1@[::1:5672/":                     "amqp://u:[redacted]@[::1:5672/",
		"mongodb://u:pw1@h1:27017,h2:27017/db?rs=rs0": "mongodb://u:[redacted]@h1:27017,h2:27017/db?rs=rs0",
		"https://example.com:8443/users/a@b.c":        "https://example.com:8443/users/a@b.c",
		"see https://example.com/x and a@b.c":         "see https://example.com/x and a@b.c",
	}
	for in, want := range cases {
		if got := Value("X", in); got != want {
			t.Errorf("Value(%q) = %q, want %q", in, got, want)
		}
	}
	for _, n := range []string{"DB_PASS", "SMTP_PASS", "mysqlPwd", "MYSQL_PWD", "REDIS_PASS"} {
		if !IsSecretName(n) {
			t.Errorf("IsSecretName(%q) = false, want true", n)
		}
	}
	for _, n := range []string{"PWD", "OLDPWD", "PASSENGER_APP_ENV", "BYPASS_CACHE"} {
		if IsSecretName(n) {
			t.Errorf("IsSecretName(%q) = true, want false", n)
		}
	}
}

// TestValueMasksSecretMembersOfJSON: a JSON document in a variable of a
// neutral name (a service account's key file) has its secret members
// masked in place, nested ones and whole objects included; the rest of the
// text is as written, and what is not JSON is left alone.
func TestValueMasksSecretMembersOfJSON(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n", "client_email": "a@b.iam"}`,
			`{"type": "service_account", "private_key": "[redacted]", "client_email": "a@b.iam"}`},
		{` [{"user":"app","password":"hunter2","pin":1234,"apiKey":12345},{"db":{"token":"t","ok":true}}] `,
			` [{"user":"app","password":"[redacted]","pin":1234,"apiKey":"[redacted]"},{"db":{"token":"[redacted]","ok":true}}] `},
		{"{\n  \"credentials\": {\"id\": \"x\", \"key\": [1, 2]},\n  \"region\": \"eu\"\n}",
			"{\n  \"credentials\": \"[redacted]\",\n  \"region\": \"eu\"\n}"},
		{`{"secret": null, "auth": false, "name": "x"}`, `{"secret": null, "auth": false, "name": "x"}`},
		{`{"url": "postgres://u:pw@h/db"}`, `{"url": "postgres://u:[redacted]@h/db"}`},
		{`{"password": "x"`, `{"password": "x"`}, // not JSON: as it is
		{`{"password": "x"} trailing`, `{"password": "x"} trailing`},
		{`[1, 2]`, `[1, 2]`},
		{`{"k\u0065y": "v"}`, `{"k\u0065y": "[redacted]"}`},
	} {
		if got := Value("GCP_SA", c.in); got != c.want {
			t.Errorf("Value(%q)\n = %q\nwant %q", c.in, got, c.want)
		}
	}
	got := Environ([]string{`FIREBASE_CONFIG={"apiKey":"AIza-1","projectId":"p"}`})
	if want := `FIREBASE_CONFIG={"apiKey":"[redacted]","projectId":"p"}`; got[0] != want {
		t.Errorf("Environ = %q, want %q", got[0], want)
	}
}

// TestValueMasksJSONInsideJSONStrings: a JSON document written as a string
// (an option that holds a client's JSON settings, or a whole value that is
// a quoted key file, as some secret stores hand them out) has its secret
// members masked too, the string staying a string; other strings and the
// rest of the text are as written.
func TestValueMasksJSONInsideJSONStrings(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"name": "db", "options": "{\"user\":\"app\",\"password\":\"hunter2\"}"}`,
			`{"name": "db", "options": "{\"user\":\"app\",\"password\":\"[redacted]\"}"}`},
		{`"{\"type\":\"service_account\",\"private_key\":\"-----BEGIN\\nK\\n\"}"`,
			`"{\"type\":\"service_account\",\"private_key\":\"[redacted]\"}"`},
		{`["{\"token\":\"t\"}", "<b>&</b>", "{not json}"]`, `["{\"token\":\"[redacted]\"}", "<b>&</b>", "{not json}"]`},
		{`"hello"`, `"hello"`},
		{`{"a": "{\"b\": 1}"}`, `{"a": "{\"b\": 1}"}`},
	} {
		if got := Value("SETTINGS", c.in); got != c.want {
			t.Errorf("Value(%q)\n = %q\nwant %q", c.in, got, c.want)
		}
	}
}

// TestPWDOnlyTheShellVariable: the shell's PWD, a variable (or an env
// block's key) spelt so, is the working directory and shown; pwd as a
// member of a JSON value or a configuration key of another spelling is a
// password and masked, as MYSQL_PWD is.
func TestPWDOnlyTheShellVariable(t *testing.T) {
	if got := Environ([]string{"PWD=/srv/app"}); got[0] != "PWD=/srv/app" {
		t.Errorf("Environ(PWD) = %q, want it shown", got[0])
	}
	for _, c := range []struct{ in, want string }{
		{`{"db":{"pwd":"x"}}`, `{"db":{"pwd":"[redacted]"}}`},
		{`{"db":{"PWD":"x","user":"u"}}`, `{"db":{"PWD":"[redacted]","user":"u"}}`},
		{`[{"Pwd":"x"}]`, `[{"Pwd":"[redacted]"}]`},
	} {
		if got := Value("DB_CONFIG", c.in); got != c.want {
			t.Errorf("Value(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	type db struct {
		Pwd  string `json:"pwd"`
		Opts map[string]string
		Env  map[string]string
	}
	got := Tree(db{Pwd: "x", Opts: map[string]string{"pwd": "y"}, Env: map[string]string{"PWD": "/srv/app"}})
	m, _ := got.(map[string]any)
	if m["pwd"] != Masked || m["Opts"].(map[string]any)["pwd"] != Masked || m["Env"].(map[string]any)["PWD"] != "/srv/app" {
		t.Errorf("Tree = %v", got)
	}
}

// TestURLMasksSecretQueryParameters: a URL's query parameters of secret
// names are masked, in URL (an exporter's endpoint in a log line) and in
// Value, the others kept.
func TestURLMasksSecretQueryParameters(t *testing.T) {
	for in, want := range map[string]string{
		"http://alice:pw@c:4318/v1/traces?api_key=QS&region=eu":  "http://alice:[redacted]@c:4318/v1/traces?api_key=[redacted]&region=eu",
		"https://hooks.example/x?region=eu&token=abc#frag":       "https://hooks.example/x?region=eu&token=[redacted]#frag",
		"https://s3.example/b/o?X-Amz-Signature=ff&X-Amz-Date=1": "https://s3.example/b/o?X-Amz-Signature=[redacted]&X-Amz-Date=1",
		`{"url": "https://x.example/?sig=abc"}`:                  `{"url": "https://x.example/?sig=[redacted]"}`,
		"https://x.example/?key=":                                "https://x.example/?key=",
		"https://x.example/?keyboard=qwerty&page=2":              "https://x.example/?keyboard=qwerty&page=2",
		"not a url ?token=abc":                                   "not a url ?token=abc",
	} {
		if got := URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
		if got := Value("ENDPOINT", in); got != want {
			t.Errorf("Value(ENDPOINT, %q) = %q, want %q", in, got, want)
		}
	}
}
