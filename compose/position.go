package compose

import (
	"fmt"
	"os"
	"regexp"
	"sort"
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
	if p.File == "" {
		return ""
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
			return nil, fmt.Errorf("%w: %s", api.ErrInvalid, yamlError(f, err))
		}
		if len(doc.Content) == 0 {
			return nil, fmt.Errorf("%w: %s: the file is empty; a Compose file needs at least a services: section", api.ErrInvalid, f)
		}
		root := doc.Content[0]
		if root.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%w: %s:%d:%d: the top level must be a mapping with a services: section", api.ErrInvalid, f, root.Line, root.Column)
		}
		ps.files = append(ps.files, parsedFile{name: f, root: root})
		ps.index(f, root, "")
	}
	return ps, nil
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

// yamlError turns "yaml: line 4: did not find expected key" into
// "compose.yaml:4: YAML syntax: did not find expected key".
func yamlError(file string, err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		rest := strings.TrimPrefix(msg, "line "+m[1]+": ")
		return fmt.Sprintf("%s:%s: YAML syntax error: %s; check the indentation and quoting around that line", file, m[1], rest)
	}
	return fmt.Sprintf("%s: YAML syntax error: %s", file, msg)
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
	for p := path; p != ""; {
		if pos, ok := ps.byPath[p]; ok {
			return pos
		}
		i := strings.LastIndexByte(p, '.')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	if len(ps.files) > 0 {
		return Pos{File: ps.files[0].name, Line: 1, Col: 1}
	}
	return Pos{}
}

// pathRE finds dotted model paths in compose-go's messages.
var pathRE = regexp.MustCompile(`\b((?:services|volumes|networks|secrets|configs)(?:\.[A-Za-z0-9_.\-]+)?)`)

var bracketRE = regexp.MustCompile(`\[([A-Za-z0-9_.\-]+)\]`)

var serviceRE = regexp.MustCompile(`service "([^"]+)"`)

// locate prefixes a compose-go error message with the position of the
// longest model path it mentions.
func (ps *positions) locate(msg string) string {
	// compose-go's decoder writes services[web].mem_limit.
	msg = bracketRE.ReplaceAllString(msg, ".$1")
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
		m = strings.TrimRight(m, ".")
		// Trim to the longest prefix that is written in a file.
		for p := m; p != ""; {
			if _, ok := ps.byPath[p]; ok {
				if len(p) > len(best) {
					best = p
				}
				break
			}
			i := strings.LastIndexByte(p, '.')
			if i < 0 {
				break
			}
			p = p[:i]
		}
	}
	if best == "" {
		return msg
	}
	return ps.at(best).String() + ": " + msg
}

// keysUnder lists the keys written under a mapping path in any file, sorted.
func (ps *positions) keysUnder(path string) []string {
	seen := map[string]bool{}
	prefix := path + "."
	for p := range ps.byPath {
		if rest, ok := strings.CutPrefix(p, prefix); ok {
			seen[strings.SplitN(rest, ".", 2)[0]] = true
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
