package compose

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/berth-dev/berth/api"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func TestGolden(t *testing.T) {
	t.Parallel()
	cases := []struct {
		dir      string
		files    []string
		profiles []string
		environ  map[string]string
	}{
		{dir: "minimal"},
		{dir: "full"},
		{dir: "multi", files: []string{"compose.yaml", "override.yaml"}, environ: map[string]string{"REGION": "from-environment"}},
		{dir: "jobs"},
		{dir: "hostnet"},
		{dir: "profiles", profiles: []string{"debug"}},
		{dir: "restart"},
		{dir: "volumes"},
	}
	for _, tc := range cases {
		t.Run(tc.dir, func(t *testing.T) {
			t.Parallel()
			dir, err := filepath.Abs(filepath.Join("..", "testdata", "compose", tc.dir))
			if err != nil {
				t.Fatal(err)
			}
			files := tc.files
			if len(files) == 0 {
				files = []string{"compose.yaml"}
			}
			for i := range files {
				files[i] = filepath.Join(dir, files[i])
			}
			st, err := Load(context.Background(), Options{Files: files, Profiles: tc.profiles, Environ: tc.environ, StackName: stackFor(tc.dir)})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			got, _ := json.MarshalIndent(st, "", "  ")
			// Paths are resolved against the project; keep the golden files
			// independent of where the checkout lives.
			got = []byte(strings.ReplaceAll(string(got), dir, "."))
			got = append(got, '\n')
			golden := filepath.Join(dir, "stack.golden.json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./compose -update to create it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("conversion differs from %s (go test ./compose -update rewrites it):\n%s", golden, got)
			}
		})
	}
}

// stackFor leaves one case to derive its name from the project.
func stackFor(dir string) string {
	if dir == "full" {
		return ""
	}
	return dir
}

func TestErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		desc, doc, want string
	}{
		{"unknown service key with suggestion", "services:\n  web:\n    imagee: x\n", `compose.yaml:3:5: services.web: unknown key "imagee" (did you mean "image"?)`},
		{"unknown top-level key", "services:\n  web:\n    image: x\nservice:\n  a: {}\n", `compose.yaml:4:1: : unknown key "service" (did you mean "services"?)`},
		{"unknown deploy key", "services:\n  web:\n    image: x\n    deploy:\n      replica: 2\n", `compose.yaml:5:7: services.web.deploy: unknown key "replica"`},
		{"wrong type", "services:\n  web:\n    image: x\n    deploy:\n      replicas: three\n", "compose.yaml:5:7"},
		{"build without image", "services:\n  web:\n    build: .\n", "compose.yaml:3:5: services.web.build: build: without image:"},
		{"yaml syntax", "services:\n  web:\n    image: x\n   bad: [\n", "YAML syntax error"},
		{"undefined volume", "services:\n  web:\n    image: x\n    volumes:\n      - data:/data\n", "compose.yaml:2:3"},
		{"privileged", "services:\n  web:\n    image: x\n    privileged: true\n", "compose.yaml:4:5: services.web.privileged: privileged containers"},
		{"host pid", "services:\n  web:\n    image: x\n    pid: host\n", "compose.yaml:4:5: services.web.pid"},
		{"network mode", "services:\n  web:\n    image: x\n    network_mode: bridge\n", "compose.yaml:4:5: services.web.network_mode"},
		{"bad duration", "services:\n  web:\n    image: x\n    healthcheck:\n      test: [\"CMD\", \"true\"]\n      interval: fast\n", "compose.yaml:6:7"},
		{"bad memory", "services:\n  web:\n    image: x\n    mem_limit: lots\n", "compose.yaml:4:5"},
		{"docker socket", "services:\n  web:\n    image: x\n    volumes:\n      - /var/run/docker.sock:/var/run/docker.sock\n", "compose.yaml:5:9: services.web.volumes.0: mounting the Docker socket"},
		{"unknown x-berth key", "services:\n  web:\n    image: x\n    x-berth:\n      shedule: \"@hourly\"\n", `compose.yaml:5:7: services.web.x-berth: unknown key "shedule" (did you mean "schedule"?)`},
		{"bad cron", "services:\n  web:\n    image: x\n    x-berth:\n      schedule: \"every tuesday\"\n", "compose.yaml:5:7: services.web.x-berth.schedule"},
		{"global mode", "services:\n  web:\n    image: x\n    deploy:\n      mode: global\n", "compose.yaml:5:7: services.web.deploy.mode"},
		{"invalid service name", "services:\n  Web_Bad!:\n    image: x\n", "compose.yaml"},
		{"cap_add ALL", "services:\n  web:\n    image: x\n    cap_add: [ALL]\n", "services.web.cap_add"},
		{"seccomp unconfined", "services:\n  web:\n    image: x\n    security_opt: [\"seccomp=unconfined\"]\n", "services.web.security_opt"},
		{"bad constraint", "services:\n  web:\n    image: x\n    deploy:\n      placement:\n        constraints: [\"zone=eu\"]\n", "compose.yaml:6:23: services.web.deploy.placement.constraints.0"},
		{"empty file", "", "the file is empty"},
		{"not a mapping", "- a\n- b\n", "the top level must be a mapping"},
		{"undefined secret", "services:\n  web:\n    image: x\n    secrets: [pw]\n", "secret"},
		{"route without port", "services:\n  web:\n    image: x\n    x-berth:\n      routes:\n        - host: a.example\n", "services.web.x-berth.routes.0: a route needs port"},
		{"route bad path", "services:\n  web:\n    image: x\n    x-berth:\n      routes:\n        - {path: api, port: 80}\n", "path api must start with /"},
		{"port published twice", "services:\n  a:\n    image: x\n    ports: [\"80:80\"]\n  b:\n    image: x\n    ports: [\"80:8080\"]\n", "already published"},
		{"memory too small", "services:\n  web:\n    image: x\n    mem_limit: 1k\n", "below the engine's minimum"},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "compose.yaml")
			if err := os.WriteFile(path, []byte(tc.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(context.Background(), Options{Files: []string{path}, StackName: "t"})
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if !errors.Is(err, api.ErrInvalid) {
				t.Errorf("error is not of kind invalid: %v", err)
			}
			msg := strings.ReplaceAll(err.Error(), filepath.Dir(path)+"/", "")
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error\n  %s\ndoes not contain\n  %s", msg, tc.want)
			}
		})
	}
}

func TestMissingFile(t *testing.T) {
	t.Parallel()
	_, err := Load(context.Background(), Options{Files: []string{"/nonexistent/compose.yaml"}})
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("err = %v", err)
	}
}

func TestWarnings(t *testing.T) {
	t.Parallel()
	dir, _ := filepath.Abs("../testdata/compose/restart")
	st, err := Load(context.Background(), Options{Files: []string{filepath.Join(dir, "compose.yaml")}, StackName: "w"})
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(st.Warnings, "\n")
	for _, want := range []string{"container_name is ignored", "expose has no effect", "both restart: and deploy.restart_policy"} {
		if !strings.Contains(all, want) {
			t.Errorf("warnings lack %q:\n%s", want, all)
		}
	}
	if !regexp.MustCompile(`compose\.yaml:\d+:\d+`).MatchString(all) {
		t.Errorf("warnings have no positions:\n%s", all)
	}
}

// TestRulesCoverComposeGo fails when compose-go knows a key that berth's
// rules do not decide on, so an upgrade cannot let a field through
// unnoticed.
func TestRulesCoverComposeGo(t *testing.T) {
	t.Parallel()
	check := func(name string, typ reflect.Type, rules map[string]rule) {
		for _, key := range yamlKeys(typ) {
			if _, ok := rules[key]; !ok {
				t.Errorf("%s key %q has no rule in compose/rules.go: honour it, warn or reject", name, key)
			}
		}
	}
	check("service", reflect.TypeOf(types.ServiceConfig{}), serviceRules)
	check("deploy", reflect.TypeOf(types.DeployConfig{}), deployRules)
	check("resource", reflect.TypeOf(types.Resource{}), resourceRules)
	check("healthcheck", reflect.TypeOf(types.HealthCheckConfig{}), healthRules)
	check("restart_policy", reflect.TypeOf(types.RestartPolicy{}), deployRules["restart_policy"].sub)
	check("placement", reflect.TypeOf(types.Placement{}), deployRules["placement"].sub)
	check("update_config", reflect.TypeOf(types.UpdateConfig{}), deployRules["update_config"].sub)
	check("network", reflect.TypeOf(types.NetworkConfig{}), networkRules)
	check("volume", reflect.TypeOf(types.VolumeConfig{}), volumeRules)
	check("secret", reflect.TypeOf(types.SecretConfig{}), secretRules)
	check("project", reflect.TypeOf(types.Project{}), topRules)
}

func yamlKeys(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous || strings.Contains(opts, "inline") && name == "" {
			out = append(out, yamlKeys(f.Type)...)
			continue
		}
		if name == "" || name == "-" || strings.HasPrefix(name, "#") {
			continue
		}
		out = append(out, name)
	}
	return out
}

func FuzzLoad(f *testing.F) {
	for _, d := range []string{"minimal", "full", "jobs", "hostnet", "restart", "volumes"} {
		b, err := os.ReadFile(filepath.Join("..", "testdata", "compose", d, "compose.yaml"))
		if err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("services:\n  web:\n    image: x\n    x-berth: {schedule: 1}\n"))
	f.Add([]byte("services: {web: {image: x, deploy: {replicas: -1}}}"))
	f.Add([]byte("a: &a [*a]"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		path := filepath.Join(t.TempDir(), "compose.yaml")
		if err := os.WriteFile(path, doc, 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := Load(context.Background(), Options{Files: []string{path}, StackName: "fuzz"})
		if err != nil {
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("error not of kind invalid: %v", err)
			}
			return
		}
		if err := st.Validate(); err != nil {
			t.Fatalf("Load returned an invalid stack: %v", err)
		}
	})
}
