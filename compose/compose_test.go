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

	"github.com/compose-spec/compose-go/v2/schema"
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
		stack    string // "" derives the name from the project
	}{
		{dir: "minimal", stack: "minimal"},
		{dir: "full"},
		{dir: "multi", files: []string{"compose.yaml", "override.yaml"}, environ: map[string]string{"REGION": "from-environment"}, stack: "multi"},
		{dir: "jobs", stack: "jobs"},
		{dir: "hostnet", stack: "hostnet"},
		{dir: "profiles", profiles: []string{"debug"}, stack: "profiles"},
		{dir: "restart", stack: "restart"},
		{dir: "volumes", stack: "volumes"},
		{dir: "extends", stack: "extends"},
		{dir: "resources", stack: "resources"},
		{dir: "health", stack: "health"},
		{dir: "envfile", environ: map[string]string{"FROM_PROCESS": "process-value"}},
		{dir: "networks", stack: "networks"},
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
			st, err := Load(context.Background(), Options{Files: files, Profiles: tc.profiles, Environ: tc.environ, StackName: tc.stack})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			got, err := json.MarshalIndent(st, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			// Paths are resolved against the project; keep the golden files
			// independent of where the checkout lives.
			got = []byte(strings.ReplaceAll(string(got), dir, ".") + "\n")
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

// errorCase is a bad Compose file and what its error must say.
type errorCase struct {
	desc     string
	doc      string
	override string // a second file, override.yaml, when set
	profiles []string
	want     []string
}

// svc is the smallest valid service, for cases to add one bad key to.
const svc = "services:\n  web:\n    image: x\n"

// errorCases are bad files and what their errors must say: where
// (file:line:col) and what is wrong.
var errorCases = []errorCase{
	{desc: "log file too small", doc: svc + "    logging:\n      options: {max-size: 1k}\n",
		want: []string{`services.web.logging.options.max-size: max-size "1k": use a size of at least 64k`}},
	{desc: "one log file", doc: svc + "    logging:\n      options: {max-file: \"1\"}\n",
		want: []string{`services.web.logging.options.max-file: max-file "1": use a number of files from 2 to 100`}},
	{desc: "unknown logging key", doc: svc + "    logging:\n      option: {max-file: \"3\"}\n",
		want: []string{`services.web.logging: unknown key "option" (did you mean "options"?)`}},
	{desc: "unknown service key with suggestion", doc: "services:\n  web:\n    imagee: x\n",
		want: []string{`compose.yaml:3:5: services.web: unknown key "imagee" (did you mean "image"?)`}},
	{desc: "unknown top-level key", doc: svc + "service:\n  a: {}\n",
		want: []string{`compose.yaml:4:1: top level: unknown key "service" (did you mean "services"?)`}},
	{desc: "unknown deploy key", doc: svc + "    deploy:\n      replica: 2\n",
		want: []string{`compose.yaml:5:7: services.web.deploy: unknown key "replica" (did you mean "replicas"?)`}},
	{desc: "unknown port key", doc: svc + "    ports:\n      - target: 80\n        publshed: 8080\n",
		want: []string{`compose.yaml:6:9: services.web.ports.0: unknown key "publshed" (did you mean "published"?)`}},
	{desc: "wrong type", doc: svc + "    deploy:\n      replicas: three\n",
		want: []string{`compose.yaml:5:7: services.web.deploy.replicas: "three" is not a whole number`}},
	{desc: "wrong type in override wins the position", doc: svc + "    deploy:\n      replicas: 2\n", override: "services:\n  web:\n    deploy:\n      replicas: three\n",
		want: []string{`override.yaml:4:7: services.web.deploy.replicas: "three" is not a whole number`}},
	{desc: "build without image", doc: "services:\n  web:\n    build: .\n",
		want: []string{"compose.yaml:3:5: services.web.build: build: without image: berth runs images; add image: NAME"}},
	{desc: "yaml syntax: unclosed list", doc: svc + "    ports: [80\n  db:\n    image: y\n",
		want: []string{"compose.yaml:4: YAML syntax error: did not find expected ',' or ']'"}},
	{desc: "yaml syntax: bad indentation", doc: svc + "     bad: 1\n",
		want: []string{"compose.yaml:4: YAML syntax error: mapping values are not allowed in this context"}},
	{desc: "yaml syntax: unclosed quote", doc: "services:\n  web:\n    image: \"x\n",
		want: []string{"compose.yaml:3: YAML syntax error: found unexpected end of stream"}},
	{desc: "yaml syntax in override", doc: svc, override: "services:\n\tweb: {}\n",
		want: []string{"override.yaml:2: YAML syntax error", "indented with a tab; YAML indents with spaces"}},
	{desc: "undefined volume", doc: svc + "    volumes:\n      - data:/data\n",
		want: []string{`compose.yaml:4:5: services.web.volumes: volume "data" is not declared; add it under the top-level volumes:`}},
	{desc: "undefined network", doc: svc + "    networks: [front]\n",
		want: []string{`compose.yaml:4:5: services.web.networks: network "front" is not declared; add it under the top-level networks:`}},
	{desc: "undefined secret", doc: svc + "    secrets: [pw]\n",
		want: []string{`compose.yaml:4:5: services.web.secrets: secret "pw" is not declared; add it under the top-level secrets:`}},
	{desc: "privileged", doc: svc + "    privileged: true\n",
		want: []string{"compose.yaml:4:5: services.web.privileged: privileged containers can take over the host", "cap_add"}},
	{desc: "legacy key the schema refuses", doc: svc + "    log_driver: syslog\n",
		want: []string{"compose.yaml:4:5: services.web.log_driver: log_driver is not part of the Compose specification; remove it"}},
	{desc: "host pid", doc: svc + "    pid: host\n",
		want: []string{"compose.yaml:4:5: services.web.pid: sharing the host's"}},
	{desc: "host ipc", doc: svc + "    ipc: host\n", want: []string{"compose.yaml:4:5: services.web.ipc"}},
	{desc: "host uts", doc: svc + "    uts: host\n", want: []string{"compose.yaml:4:5: services.web.uts"}},
	{desc: "userns_mode", doc: svc + "    userns_mode: host\n", want: []string{"compose.yaml:4:5: services.web.userns_mode"}},
	{desc: "cgroup_parent", doc: svc + "    cgroup_parent: /x\n", want: []string{"compose.yaml:4:5: services.web.cgroup_parent"}},
	{desc: "devices", doc: svc + "    devices: [/dev/fuse]\n", want: []string{"compose.yaml:4:5: services.web.devices: host devices"}},
	{desc: "network mode", doc: svc + "    network_mode: bridge\n",
		want: []string{`compose.yaml:4:5: services.web.network_mode: network_mode "bridge" is not supported`}},
	{desc: "bad duration", doc: svc + "    healthcheck:\n      test: [\"CMD\", \"true\"]\n      interval: fast\n",
		want: []string{`compose.yaml:6:7: services.web.healthcheck.interval: time: invalid duration "fast"; use a duration like 30s or 1m30s`}},
	{desc: "bad memory", doc: svc + "    mem_limit: lots\n",
		want: []string{`compose.yaml:4:5: services.web.mem_limit: invalid size: 'lots'; use a size like 512m or 2g`}},
	{desc: "memory too small", doc: svc + "    mem_limit: 1k\n",
		want: []string{"compose.yaml:4:5: services.web.mem_limit: memory limit 1024 bytes is below the engine's minimum of 6MiB"}},
	{desc: "docker socket", doc: svc + "    volumes:\n      - /var/run/docker.sock:/var/run/docker.sock\n",
		want: []string{"compose.yaml:5:9: services.web.volumes.0: mounting the Docker socket"}},
	{desc: "unknown x-berth key", doc: svc + "    x-berth:\n      shedule: \"@hourly\"\n",
		want: []string{`compose.yaml:5:7: services.web.x-berth: unknown key "shedule" (did you mean "schedule"?); valid keys: deploy, routes, schedule, secrets_as_env, security`}},
	{desc: "unknown top-level x-berth key", doc: svc + "x-berth:\n  envirnoment: prod\n",
		want: []string{`compose.yaml:5:3: x-berth: unknown key "envirnoment" (did you mean "environment"?); valid keys: environment`}},
	{desc: "unknown strategy", doc: svc + "    x-berth:\n      deploy:\n        strategy: big-bang\n",
		want: []string{`compose.yaml:6:9: services.web.x-berth.deploy.strategy: strategy big-bang: use rolling, blue-green or canary`}},
	{desc: "falling canary steps", doc: svc + "    x-berth:\n      deploy:\n        strategy: canary\n        steps: [50, 10]\n",
		want: []string{`services.web.x-berth.deploy.steps.1: step 10: steps are whole percentages, rising, between 1 and 100`}},
	{desc: "steps without canary", doc: svc + "    x-berth:\n      deploy:\n        steps: [10]\n",
		want: []string{`services.web.x-berth.deploy.steps: steps apply to the canary strategy only`}},
	{desc: "error rate out of range", doc: svc + "    x-berth:\n      deploy:\n        max_error_rate: 5\n",
		want: []string{`compose.yaml:6:9: services.web.x-berth.deploy.max_error_rate: max_error_rate 5: use a share between 0 and 1`}},
	{desc: "bad interval", doc: svc + "    x-berth:\n      deploy:\n        interval: soon\n",
		want: []string{`compose.yaml:6:9: services.web.x-berth.deploy.interval: interval soon: use a duration like 30s or 2m`}},
	{desc: "no surge and no unavailable", doc: svc + "    x-berth:\n      deploy:\n        max_surge: 0\n        max_unavailable: 0\n",
		want: []string{`services.web.x-berth.deploy: max_surge and max_unavailable cannot both be 0`}},
	{desc: "bad cron", doc: svc + "    x-berth:\n      schedule: \"every tuesday\"\n",
		want: []string{`compose.yaml:5:7: services.web.x-berth.schedule: schedule "every tuesday"`}},
	{desc: "global mode", doc: svc + "    deploy:\n      mode: global\n",
		want: []string{`compose.yaml:5:7: services.web.deploy.mode: mode "global" is not supported yet`}},
	{desc: "invalid service name", doc: "services:\n  Web_Bad:\n    image: x\n",
		want: []string{`compose.yaml:2:3: services: service name "Web_Bad" may only contain lowercase letters`, "rename it"}},
	{desc: "service name that climbs out", doc: "services:\n  ../x:\n    image: x\n",
		want: []string{`compose.yaml:2:3: services: service name "../x" may only contain`}},
	{desc: "volume name with a slash", doc: svc + "volumes:\n  a/b: {}\n",
		want: []string{`compose.yaml:5:3: volumes: volume name "a/b" may only contain`}},
	{desc: "cap_add ALL", doc: svc + "    cap_add: [ALL]\n",
		want: []string{"compose.yaml:4:5: services.web.cap_add: cap_add ALL"}},
	{desc: "seccomp unconfined", doc: svc + "    security_opt: [\"seccomp=unconfined\"]\n",
		want: []string{"compose.yaml:4:5: services.web.security_opt"}},
	{desc: "bad constraint", doc: svc + "    deploy:\n      placement:\n        constraints: [\"zone=eu\"]\n",
		want: []string{"compose.yaml:6:23: services.web.deploy.placement.constraints.0"}},
	{desc: "empty file", doc: "", want: []string{"compose.yaml: the file is empty"}},
	{desc: "comments only", doc: "# nothing\n", want: []string{"compose.yaml: the file is empty"}},
	{desc: "not a mapping", doc: "- a\n- b\n", want: []string{"compose.yaml:1:1: the top level must be a mapping"}},
	{desc: "route without port", doc: svc + "    x-berth:\n      routes:\n        - host: a.example\n",
		want: []string{"compose.yaml:6:11: services.web.x-berth.routes.0: a route needs port"}},
	{desc: "route bad path", doc: svc + "    x-berth:\n      routes:\n        - {path: api, port: 80}\n",
		want: []string{"compose.yaml:6:12: services.web.x-berth.routes.0.path: path api must start with /"}},
	{desc: "port published twice", doc: "services:\n  a:\n    image: x\n    ports: [\"80:80\"]\n  b:\n    image: x\n    ports: [\"80:8080\"]\n",
		want: []string{"compose.yaml:7:5: services.b.ports: port 80/tcp is already published by service \"a\""}},
	{desc: "undefined dependency", doc: svc + "    depends_on: [db]\n",
		want: []string{`compose.yaml:4:5: services.web.depends_on: service "db" is not defined`}},
	{desc: "several decoding problems, each placed", doc: svc + "    deploy: {resources: {limits: {memory: 1x, cpus: z}}}\n    stop_grace_period: 5 minutes\n",
		want: []string{"3 problems:\n", "compose.yaml:4:35: services.web.deploy.resources.limits.memory: invalid suffix", `compose.yaml:4:47: services.web.deploy.resources.limits.cpus: "z" is not a number`,
			"compose.yaml:5:5: services.web.stop_grace_period: time: unknown unit"}},
	{desc: "wrong type by schema", doc: svc + "    ports: {a: 1}\n",
		want: []string{"compose.yaml:4:5: services.web.ports: must be an array"}},
	{desc: "required variable", doc: "services:\n  web:\n    image: ${TAG:?set TAG to the release}\n",
		want: []string{"compose.yaml:3:5: services.web.image: required variable TAG is missing a value: set TAG to the release"}},
	{desc: "external network", doc: svc + "networks:\n  shared:\n    external: true\n",
		want: []string{"compose.yaml:6:5: networks.shared.external: berth creates each stack's network itself"}},
	{desc: "subpath", doc: svc + "    volumes:\n      - type: volume\n        source: d\n        target: /d\n        volume: {subpath: sub}\nvolumes:\n  d: {}\n",
		want: []string{"compose.yaml:8:18: services.web.volumes.0.volume.subpath: volume subpaths are not supported yet"}},
	{desc: "restart typo", doc: svc + "    restart: sometimes\n",
		want: []string{`compose.yaml:4:5: services.web.restart: restart "sometimes": use no, always, unless-stopped or on-failure[:N]`}},
	{desc: "several problems, one per line", doc: svc + "    privileged: true\n    pid: host\n",
		want: []string{"2 problems:\n  ", "compose.yaml:4:5: services.web.privileged", "\n  ", "compose.yaml:5:5: services.web.pid"}},
	{desc: "jobs", doc: svc + "jobs:\n  j:\n    image: x\n",
		want: []string{"compose.yaml:4:1: jobs: top-level jobs are not supported; use a service with x-berth.schedule"}},
	{desc: "no services", doc: "name: x\n", want: []string{"compose.yaml:1:1: services: no services to deploy; add a services: section"}},
	{desc: "privileged in an active profile", doc: svc + "  debug:\n    image: d\n    profiles: [debug]\n    privileged: true\n", profiles: []string{"debug"},
		want: []string{"compose.yaml:7:5: services.debug.privileged: privileged containers"}},
	{desc: "unknown key in an inactive profile", doc: svc + "  debug:\n    image: d\n    profiles: [debug]\n    privileeged: true\n",
		want: []string{`compose.yaml:7:5: services.debug: unknown key "privileeged" (did you mean "privileged"?)`}},
	{desc: "only inactive profiles", doc: "services:\n  web:\n    image: x\n    profiles: [dev]\n",
		want: []string{"compose.yaml:1:1: services: no services to deploy: all 1 are in profiles that are not active; pass --profile NAME"}},
	{desc: "alias cycle through a merge key", doc: "services:\n  web: &d\n    <<: *d\n    image: x\n",
		want: []string{"compose.yaml:3:9: alias *d refers to a node that contains it"}},
	{desc: "alias explosion", doc: "x-a: &a [x, x, x, x, x, x, x, x, x, x]\nx-b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n" +
		"x-c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nx-d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\nx-e: &e [*d, *d, *d, *d, *d]\n" + svc,
		want: []string{"compose.yaml: the file expands to more than 50000 YAML nodes"}},
	{desc: "secret file missing", doc: svc + "secrets:\n  pw:\n    file: ./nope.txt\n",
		want: []string{"compose.yaml:6:5: secrets.pw.file: stat ", "nope.txt: no such file or directory; fix the path"}},
	{desc: "reservation devices", doc: svc + "    deploy:\n      resources:\n        reservations:\n          devices: [{capabilities: [gpu]}]\n",
		want: []string{"compose.yaml:7:11: services.web.deploy.resources.reservations.devices: device reservations (GPUs) are not supported"}},
	{desc: "config environment unset", doc: svc + "configs:\n  c:\n    environment: NOT_SET_IN_TEST\n",
		want: []string{"compose.yaml:6:5: configs.c.environment: environment variable NOT_SET_IN_TEST is not set"}},
	{desc: "external volume renamed", doc: svc + "volumes:\n  d:\n    external: true\n    name: prod-data\n",
		want: []string{"compose.yaml:7:5: volumes.d.name: berth looks up an external volume by its key"}},
}

func TestErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range errorCases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			msg := loadError(t, tc)
			t.Log(msg) // go test -v shows every message, to read them as a user would
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error\n  %s\ndoes not contain\n  %s", msg, w)
				}
			}
		})
	}
}

// loadError loads a bad case and returns its error with the temporary
// directory trimmed, failing the test if it loads or is of the wrong kind.
func loadError(t *testing.T, tc errorCase) string {
	t.Helper()
	dir := t.TempDir()
	files := []string{writeFile(t, dir, "compose.yaml", tc.doc)}
	if tc.override != "" {
		files = append(files, writeFile(t, dir, "override.yaml", tc.override))
	}
	_, err := Load(context.Background(), Options{Files: files, StackName: "t", Profiles: tc.profiles})
	if err == nil {
		t.Fatal("Load succeeded")
	}
	if !errors.Is(err, api.ErrInvalid) {
		t.Errorf("error is not of kind invalid: %v", err)
	}
	return strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), "")
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadArguments(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := writeFile(t, dir, "compose.yaml", "services:\n  web:\n    image: x\n")
	cases := []struct {
		desc string
		opts Options
		want string
	}{
		{"missing file", Options{Files: []string{filepath.Join(dir, "nope.yaml")}}, "nope.yaml: no such file; pass -f PATH"},
		{"no files", Options{}, "no Compose file given"},
		{"stack name that climbs out", Options{Files: []string{good}, StackName: "../x"}, `stack name "../x" may only contain`},
		{"stack name with capitals", Options{Files: []string{good}, StackName: "Shop"}, "--stack NAME"},
		{"missing env file", Options{Files: []string{good}, EnvFiles: []string{filepath.Join(dir, "prod.env")}}, "prod.env"},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			_, err := Load(context.Background(), tc.opts)
			if err == nil || !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want an invalid error containing %q", err, tc.want)
			}
		})
	}
}

// TestExtendsIsJudged checks that what extends: brings in from a file
// the key check never read is still rejected, with a position that says
// where it came from.
func TestExtendsIsJudged(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "base.yaml", "services:\n  base:\n    image: b\n    privileged: true\n    x-berth:\n      shedule: x\n")
	path := writeFile(t, dir, "compose.yaml", "services:\n  web:\n    extends: {file: base.yaml, service: base}\n")
	_, err := Load(context.Background(), Options{Files: []string{path}, StackName: "t"})
	if err == nil {
		t.Fatal("Load accepted privileged: true from an extended service")
	}
	msg := strings.ReplaceAll(err.Error(), dir+"/", "")
	for _, want := range []string{
		"compose.yaml:2:3: services.web.privileged: privileged containers", "(it comes from extends:)",
		`services.web.x-berth: unknown key "shedule"`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error\n  %s\ndoes not contain\n  %s", msg, want)
		}
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

// TestLogging: logging.options max-size and max-file set the rotation of
// the engine's json-file log; another driver and other options are warned
// about and ignored.
func TestLogging(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeFile(t, dir, "compose.yaml", `services:
  web:
    image: x
    logging:
      driver: syslog
      options: {max-size: 256k, max-file: "4", compress: "true"}
`)
	st, err := Load(context.Background(), Options{Files: []string{path}, StackName: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Services["web"].Logs; got != (api.LogRotation{MaxSize: "256k", MaxFiles: 4}) {
		t.Errorf("logs = %+v", got)
	}
	all := strings.Join(st.Warnings, "\n")
	for _, want := range []string{`logging driver "syslog" is ignored`, "logging option compress is ignored"} {
		if !strings.Contains(all, want) {
			t.Errorf("warnings lack %q:\n%s", want, all)
		}
	}
}

func TestConvert(t *testing.T) {
	t.Parallel()
	replicas := 3
	p := &types.Project{Name: "shop", Services: types.Services{
		"web": {Name: "web", Restart: "on-failure:4", ContainerName: "x", ContainerSpec: types.ContainerSpec{Image: "web:1", CPUS: 0.3},
			Deploy: &types.DeployConfig{Replicas: &replicas}},
	}}
	st, err := Convert(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	web := st.Services["web"]
	if st.Name != "shop" || web.Replicas != 3 || web.Resources.NanoCPUs != 3e8 ||
		web.Restart != (api.RestartPolicy{Condition: api.RestartOnFailure, MaxAttempts: 4}) {
		t.Errorf("converted %+v", web)
	}
	if len(st.Warnings) != 1 || !strings.HasPrefix(st.Warnings[0], "services.web.container_name: ") {
		t.Errorf("warnings = %q", st.Warnings)
	}
	p.Services["web"] = types.ServiceConfig{Name: "web", ContainerSpec: types.ContainerSpec{Image: "w", Privileged: true}}
	if _, err := Convert(p, Options{}); err == nil || !strings.Contains(err.Error(), "services.web.privileged") {
		t.Errorf("privileged: err = %v", err)
	}
}

func TestNanoCPUs(t *testing.T) {
	t.Parallel()
	for in, want := range map[float32]int64{0.1: 1e8, 0.3: 3e8, 1.3: 13e8, 0.001: 1e6, 2: 2e9, 0: 0} {
		if got := nanoCPUs(in); got != want {
			t.Errorf("nanoCPUs(%v) = %d, want %d", in, got, want)
		}
	}
}

// internalFields are exported fields of compose-go's types that no user
// writes under their own key.
var internalFields = map[string]string{
	"CustomLabels": "labels compose-go adds itself",
	"Extensions":   "x-* keys: x-berth is read through its own rules, other extensions are ignored as Compose does",
}

// TestRulesCoverComposeGo walks compose-go's model by reflection, from
// the project down through every rule with sub-rules, and fails when a
// field has no rule: a compose-go upgrade cannot let a key through
// unnoticed. Honoured struct-valued keys must either have sub-rules or
// be declared opaque.
func TestRulesCoverComposeGo(t *testing.T) {
	t.Parallel()
	top := reflect.TypeOf(types.Project{})
	coverType(t, "project", top, topRules, map[reflect.Type]bool{})
	// The top-level collections hold the types their rules are for.
	for key, typ := range map[string]reflect.Type{
		"services": reflect.TypeOf(types.ServiceConfig{}), "networks": reflect.TypeOf(types.NetworkConfig{}),
		"volumes": reflect.TypeOf(types.VolumeConfig{}), "secrets": reflect.TypeOf(types.SecretConfig{}),
		"configs": reflect.TypeOf(types.ConfigObjConfig{}),
	} {
		if f, ok := top.FieldByName(strings.ToUpper(key[:1]) + key[1:]); !ok || elem(f.Type) != typ {
			t.Errorf("project.%s does not hold %v", key, typ)
		}
	}
}

// TestRulesFollowTheSchema checks the rules against the schema
// compose-go validates with: every key it allows has a rule that is not
// legacy, and every key of the model it refuses has a legacy rule, which
// berth refuses first with a clearer message than the schema's.
func TestRulesFollowTheSchema(t *testing.T) {
	t.Parallel()
	var doc struct {
		Defs map[string]struct {
			Properties map[string]any `json:"properties"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal([]byte(schema.Schema), &doc); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		defs  []string
		rules map[string]rule
		typ   reflect.Type
	}{
		{[]string{"service", "container_spec", "workload_spec"}, serviceRules, reflect.TypeOf(types.ServiceConfig{})},
		{[]string{"deployment"}, deployRules, reflect.TypeOf(types.DeployConfig{})},
		{[]string{"healthcheck"}, healthRules, reflect.TypeOf(types.HealthCheckConfig{})},
		{[]string{"network"}, networkRules, reflect.TypeOf(types.NetworkConfig{})},
		{[]string{"volume"}, volumeRules, reflect.TypeOf(types.VolumeConfig{})},
		{[]string{"secret"}, secretRules, reflect.TypeOf(types.SecretConfig{})},
		{[]string{"config"}, configRules, reflect.TypeOf(types.ConfigObjConfig{})},
	} {
		allowed := map[string]bool{}
		for _, def := range tc.defs {
			for k := range doc.Defs[def].Properties {
				allowed[k] = true
			}
		}
		if len(allowed) < 4 {
			t.Errorf("found only %d keys for %v in compose-go's schema: has its layout changed?", len(allowed), tc.defs)
		}
		for k := range allowed {
			if r, ok := tc.rules[k]; !ok || r.legacy {
				t.Errorf("%s.%s is in the schema: give it a rule that is not legacy", tc.defs[0], k)
			}
		}
		for _, f := range yamlFields(tc.typ) {
			if !allowed[f.key] && f.key != "name" && !tc.rules[f.key].legacy {
				t.Errorf("%s.%s is in compose-go's model but not its schema: make its rule legacy", tc.defs[0], f.key)
			}
		}
	}
}

func coverType(t *testing.T, where string, typ reflect.Type, rules map[string]rule, seen map[reflect.Type]bool) {
	t.Helper()
	if seen[typ] {
		return
	}
	seen[typ] = true
	keys := map[string]bool{}
	for _, f := range yamlFields(typ) {
		keys[f.key] = true
	}
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		if f.IsExported() && !f.Anonymous && !keys[yamlName(f)] && internalFields[f.Name] == "" && yamlName(f) != "-" {
			t.Errorf("%s.%s has no yaml key and is not listed in internalFields", where, f.Name)
		}
	}
	for _, f := range yamlFields(typ) {
		r, ok := rules[f.key]
		path := where + "." + f.key
		ft := elem(typ.FieldByIndex(f.index).Type)
		switch {
		case !ok:
			t.Errorf("%s has no rule in compose/rules.go: honour it, warn or reject", path)
		case r.sub != nil:
			if ft.Kind() != reflect.Struct {
				t.Errorf("%s has sub-rules but holds %v", path, ft)
				continue
			}
			coverType(t, path, ft, r.sub, seen)
		case r.verdict == honoured && !r.opaque && ft.Kind() == reflect.Struct && len(yamlFields(ft)) > 0:
			t.Errorf("%s is honoured and holds %v: give it sub-rules or mark it opaque", path, ft)
		}
	}
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "" {
		return "-"
	}
	return name
}

// elem is the type a field's values have: through pointers, slices and
// maps.
func elem(t reflect.Type) reflect.Type {
	for {
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
			t = t.Elem()
		default:
			return t
		}
	}
}

func FuzzLoad(f *testing.F) {
	dirs, _ := filepath.Glob(filepath.Join("..", "testdata", "compose", "*", "compose.yaml"))
	for _, d := range dirs {
		if b, err := os.ReadFile(d); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("services:\n  web:\n    image: x\n    x-berth: {schedule: 1}\n"))
	f.Add([]byte("services: {web: {image: x, deploy: {replicas: -1}}}"))
	f.Add([]byte("a: &a [*a]"))
	f.Add([]byte("x-d: &d {image: x}\nservices: {web: {<<: *d, privileged: true}}"))
	f.Add([]byte("services:\n  web: &d\n    <<: *d\n    image: x\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "compose.yaml")
		if err := os.WriteFile(path, doc, 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := Load(context.Background(), Options{Files: []string{path}, StackName: "fuzz", Environ: map[string]string{}})
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
