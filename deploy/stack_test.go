package deploy

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// stack is a parsed compose file of the repository.
type stack struct {
	root    string // the repository root, absolute
	file    string // the compose file's name in root
	project *types.Project
}

// loadStack loads ../docker-compose.yml (see loadComposeFile).
func loadStack(t *testing.T) *stack {
	t.Helper()
	return loadComposeFile(t, "docker-compose.yml", "strata")
}

// loadComposeFile loads the compose file ../name as project the way
// `docker compose config` does: schema validation, interpolation (with an
// empty environment, so the file's own defaults apply), YAML anchors and
// merges, path resolution.
func loadComposeFile(t *testing.T, name, project string) *stack {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(root, name)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("read the compose file: %v", err)
	}
	details := types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: file, Content: b}},
		Environment: types.Mapping{},
	}
	p, err := loader.LoadWithContext(context.Background(), details, func(o *loader.Options) {
		o.SetProjectName(project, true)
	})
	if err != nil {
		t.Fatalf("%s is not a valid compose file: %v", name, err)
	}
	return &stack{root: root, file: name, project: p}
}

// service returns the service called name, failing t when there is none.
func (s *stack) service(t *testing.T, name string) types.ServiceConfig {
	t.Helper()
	svc, ok := s.project.Services[name]
	if !ok {
		t.Fatalf("%s has no service %q", s.file, name)
	}
	return svc
}

// env returns the value of environment variable key of service svc.
func (s *stack) env(t *testing.T, svc, key string) string {
	t.Helper()
	v, ok := s.service(t, svc).Environment[key]
	if !ok || v == nil {
		t.Fatalf("service %s sets no environment variable %s", svc, key)
	}
	return *v
}

// ports returns the container ports service svc declares (expose and ports).
func (s *stack) ports(t *testing.T, svc string) []string {
	t.Helper()
	c := s.service(t, svc)
	out := slices.Clone([]string(c.Expose))
	for _, p := range c.Ports {
		out = append(out, fmt.Sprint(p.Target))
	}
	return out
}

// hostPath maps path inside service svc's container to the file or
// directory of the repository bind-mounted there.
func (s *stack) hostPath(t *testing.T, svc, path string) string {
	t.Helper()
	for _, v := range s.service(t, svc).Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		if rel, ok := under(path, v.Target); ok {
			return filepath.Join(v.Source, rel)
		}
	}
	t.Fatalf("service %s: %s is not in any directory or file mounted from the repository", svc, path)
	return ""
}

// volumeAt returns the named volume mounted at path in service svc, or "".
func (s *stack) volumeAt(t *testing.T, svc, path string) string {
	t.Helper()
	for _, v := range s.service(t, svc).Volumes {
		if v.Type == types.VolumeTypeVolume && filepath.Clean(v.Target) == filepath.Clean(path) {
			return v.Source
		}
	}
	return ""
}

// under reports whether path is target or below it, and the rest.
func under(path, target string) (string, bool) {
	path, target = filepath.Clean(path), filepath.Clean(target)
	if path == target {
		return "", true
	}
	if strings.HasPrefix(path, target+"/") {
		return strings.TrimPrefix(path, target+"/"), true
	}
	return "", false
}

// checkServiceAddr checks that hostport names a service of the stack and a
// port that service declares.
func (s *stack) checkServiceAddr(t *testing.T, what, hostport string) {
	t.Helper()
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Errorf("%s: %q is not host:port: %v", what, hostport, err)
		return
	}
	if _, ok := s.project.Services[host]; !ok {
		t.Errorf("%s: host %q is not a service of %s", what, host, s.file)
		return
	}
	if !slices.Contains(s.ports(t, host), port) {
		t.Errorf("%s: service %s does not declare port %s (it declares %v)", what, host, port, s.ports(t, host))
	}
}

// checkServiceURL checks an http URL that must reach a service of the stack.
func (s *stack) checkServiceURL(t *testing.T, what, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Port() == "" {
		t.Errorf("%s: %q is not an http URL with a port: %v", what, raw, err)
		return &url.URL{}
	}
	s.checkServiceAddr(t, what, u.Host)
	return u
}

// flagValue returns the value of flag name (with its dashes) in args, as
// name=value or name value.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
		if a == name && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

// dockerStage is one stage of a Dockerfile.
type dockerStage struct {
	name, base string
	instrs     []dockerInstr
}

// dockerInstr is one instruction, continuation lines joined.
type dockerInstr struct {
	cmd  string // upper case
	args string
}

// parseDockerfile reads the stages of a Dockerfile. It is written here
// rather than imported from BuildKit, whose module would bring a large
// dependency tree into Strata's go.mod for one test; it handles what the
// Dockerfile uses: comments, line continuations, FROM ... AS name.
func parseDockerfile(path string) ([]dockerStage, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var stages []dockerStage
	var cur strings.Builder
	flush := func() error {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return nil
		}
		cmd, args, _ := strings.Cut(line, " ")
		in := dockerInstr{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			st := dockerStage{base: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
			return nil
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				return fmt.Errorf("%s before the first FROM", in.cmd)
			}
			return nil
		}
		stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, in)
		return nil
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`))
			cur.WriteByte(' ')
			continue
		}
		cur.WriteString(line)
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return stages, flush()
}

// stage returns the stage called name.
func stageNamed(stages []dockerStage, name string) (dockerStage, bool) {
	for _, s := range stages {
		if s.name == name {
			return s, true
		}
	}
	return dockerStage{}, false
}

// all returns the arguments of every cmd instruction of the stage.
func (s dockerStage) all(cmd string) []string {
	var out []string
	for _, in := range s.instrs {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}
