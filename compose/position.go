package compose

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/berth-dev/berth/api"
)

// Pos is a place in a Compose file.
type Pos struct {
	File string
	Line int
	Col  int
}

func (p Pos) String() string {
	switch {
	case p.File == "":
		return ""
	case p.Line == 0:
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// positions maps dotted model paths ("services.web.deploy.replicas",
// "services.web.volumes.0") to where they are written. With several files
// the last file that writes a path wins, as the merge does.
type positions struct {
	byPath map[string]Pos
	files  []parsedFile
}

type parsedFile struct {
	name string // as the user gave it, for messages
	raw  []byte
	root *yaml.Node
}

// maxFileSize bounds a Compose file: real ones are kilobytes, and the
// parsers' cost grows with input.
const maxFileSize = 1 << 20

// parseFiles reads every file as YAML nodes. YAML syntax errors are
// reported here, with yaml's own line, before compose-go sees the file.
func parseFiles(files []string) (*positions, error) {
	ps := &positions{byPath: map[string]Pos{}}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			if os.IsNotExist(err) {
				return nil, fmt.Errorf("%w: open %s: no such file; pass -f PATH to a Compose file", api.ErrInvalid, f)
			}
			return nil, fmt.Errorf("%w: read %s: %v", api.ErrInvalid, f, err)
		}
		if len(b) > maxFileSize {
			return nil, fmt.Errorf("%w: %s is %d bytes; Compose files are limited to %d", api.ErrInvalid, f, len(b), maxFileSize)
		}
		if strings.TrimSpace(string(b)) == "" {
			return nil, fmt.Errorf("%w: %s: the file is empty; a Compose file needs at least a services: section", api.ErrInvalid, f)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(b, &doc); err != nil {
			return nil, fmt.Errorf("%w: %s", api.ErrInvalid, yamlError(f, b, err))
		}
		if len(doc.Content) == 0 {
			return nil, fmt.Errorf("%w: %s: the file is empty; a Compose file needs at least a services: section", api.ErrInvalid, f)
		}
		if err := checkAliases(f, &doc); err != nil {
			return nil, err
		}
		root := doc.Content[0]
		if root.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%w: %s:%d:%d: the top level must be a mapping with a services: section", api.ErrInvalid, f, root.Line, root.Column)
		}
		ps.files = append(ps.files, parsedFile{name: f, raw: b, root: root})
		ps.index(f, root, "")
	}
	return ps, nil
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

// yamlError turns "yaml: line 4: did not find expected key" into
// "compose.yaml:4: YAML syntax error: did not find expected key; ...".
func yamlError(file string, content []byte, err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	m := yamlLineRE.FindStringSubmatch(msg)
	if m == nil {
		return fmt.Sprintf("%s: YAML syntax error: %s", file, msg)
	}
	rest := strings.TrimPrefix(msg, "line "+m[1]+": ")
	line, _ := strconv.Atoi(m[1])
	hint := "check the indentation and quoting around that line"
	if isParserProblem(rest) {
		// yaml.v3 counts lines from 0 in parser (not scanner) errors, and
		// names the line where the unfinished block or list began.
		line++
		hint = "check the indentation and quoting of the block that begins on that line"
	}
	if hasTabIndent(content, line) {
		hint = "that line is indented with a tab; YAML indents with spaces"
	}
	return fmt.Sprintf("%s:%d: YAML syntax error: %s; %s", file, line, rest, hint)
}

// isParserProblem recognises the messages of yaml.v3's parser (as
// opposed to its scanner), from its parserc.go.
func isParserProblem(msg string) bool {
	for _, p := range []string{"did not find expected", "found duplicate %", "found incompatible YAML document", "found undefined tag handle"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

func hasTabIndent(content []byte, line int) bool {
	lines := strings.Split(string(content), "\n")
	if line < 1 || line > len(lines) {
		return false
	}
	l := lines[line-1]
	return strings.Contains(l[:len(l)-len(strings.TrimLeft(l, " \t"))], "\t")
}

func (ps *positions) index(file string, n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			ps.byPath[p] = Pos{File: file, Line: k.Line, Col: k.Column}
			ps.index(file, v, p)
		}
	case yaml.SequenceNode:
		for i, v := range n.Content {
			p := join(path, strconv.Itoa(i))
			ps.byPath[p] = Pos{File: file, Line: v.Line, Col: v.Column}
			ps.index(file, v, p)
		}
	}
	// Aliases are not followed: their target is indexed where it is
	// written, and following them could loop (a: &a [*a]).
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// at returns the position of path, or of its nearest written ancestor.
func (ps *positions) at(path string) Pos {
	if p := ps.written(path); p != "" {
		return ps.byPath[p]
	}
	if len(ps.files) > 0 {
		return Pos{File: ps.files[0].name, Line: 1, Col: 1}
	}
	return Pos{}
}

// pathRE finds dotted model paths in compose-go's messages.
var pathRE = regexp.MustCompile(`\b((?:services|volumes|networks|secrets|configs)(?:\.[A-Za-z0-9_.\-]+)?)`)

var serviceRE = regexp.MustCompile(`service "([^"]+)"`)

// locate returns the longest model path a compose-go message mentions
// that a file writes, or "".
func (ps *positions) locate(msg string) string {
	var best string
	// compose-go also names services in prose: `service "web" refers to ...`.
	for _, m := range serviceRE.FindAllStringSubmatch(msg, -1) {
		if p := "services." + m[1]; len(p) > len(best) {
			if _, ok := ps.byPath[p]; ok {
				best = p
			}
		}
	}
	for _, m := range pathRE.FindAllString(msg, -1) {
		if p := ps.written(strings.TrimRight(m, ".")); len(p) > len(best) {
			best = p
		}
	}
	return best
}

// written returns path, or its nearest ancestor that a file writes ("" if
// none does).
func (ps *positions) written(path string) string {
	for p := path; p != ""; {
		if _, ok := ps.byPath[p]; ok {
			return p
		}
		i := strings.LastIndexByte(p, '.')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return ""
}
