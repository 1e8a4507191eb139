package images

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// A Dockerfile parser of the instructions that decide what the product
// images are (FROM, ARG, COPY, RUN, USER, ENTRYPOINT, CMD, LABEL), so that
// a test can hold the Dockerfile and pkg/images to the same images. It
// follows Docker's rules for those (line continuations, comments, exec and
// shell forms, quoting and ${VAR} substitution from ARG); the rest is
// skipped.

// Stage is one FROM of a Dockerfile.
type Stage struct {
	Name       string
	From       string
	Copies     []Copy
	Runs       []string
	User       string
	Entrypoint []string
	Cmd        []string
	Labels     map[string]string
}

// Copy is one COPY instruction.
type Copy struct {
	From    string
	Sources []string
	Dest    string
}

// ErrDockerfile is wrapped by every line the parser refuses.
var ErrDockerfile = errors.New("parsing the Dockerfile")

// ParseDockerfile returns the stages of a Dockerfile, with ARGs taken from
// buildArgs, else their defaults.
func ParseDockerfile(src string, buildArgs map[string]string) ([]Stage, error) {
	global := map[string]string{}
	var stages []Stage
	var args map[string]string // the current stage's
	for _, line := range logicalLines(src) {
		word, rest, _ := strings.Cut(strings.TrimSpace(line.text), " ")
		rest = strings.TrimSpace(rest)
		instr := strings.ToUpper(word)
		fail := func(format string, a ...any) error {
			return fmt.Errorf("%w: line %d (%s): %s", ErrDockerfile, line.number, instr, fmt.Sprintf(format, a...))
		}
		if instr != "FROM" && instr != "ARG" && len(stages) == 0 {
			return nil, fail("before the first FROM")
		}
		var st *Stage
		if len(stages) > 0 {
			st = &stages[len(stages)-1]
		}
		switch instr {
		case "ARG":
			name, def, hasDef := strings.Cut(rest, "=")
			if name == "" || strings.ContainsAny(name, " \t$\"'") {
				return nil, fail("bad name %q", name)
			}
			scope := global
			if st != nil {
				scope = args
			}
			v, given := buildArgs[name]
			switch {
			case given:
			case hasDef:
				var err error
				if v, err = unquote(def, scope); err != nil {
					return nil, fail("%v", err)
				}
			default:
				v = global[name]
			}
			scope[name] = v
		case "FROM":
			fields := strings.Fields(expand(rest, global))
			if len(fields) > 0 && strings.HasPrefix(fields[0], "--platform=") {
				fields = fields[1:]
			}
			s := Stage{Labels: map[string]string{}}
			switch {
			case len(fields) == 1:
			case len(fields) == 3 && strings.EqualFold(fields[1], "AS"):
				s.Name = strings.ToLower(fields[2])
			default:
				return nil, fail("want FROM image [AS name], got %q", rest)
			}
			s.From = fields[0]
			stages = append(stages, s)
			args = map[string]string{}
		case "COPY":
			c, err := parseCopy(expand(rest, args))
			if err != nil {
				return nil, fail("%v", err)
			}
			st.Copies = append(st.Copies, c)
		case "RUN":
			st.Runs = append(st.Runs, rest)
		case "USER":
			st.User = expand(rest, args)
		case "ENTRYPOINT":
			st.Entrypoint = command(rest)
		case "CMD":
			st.Cmd = command(rest)
		case "LABEL":
			if err := parseLabels(rest, args, st.Labels); err != nil {
				return nil, fail("%v", err)
			}
		}
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("%w: no FROM", ErrDockerfile)
	}
	return stages, nil
}

type logicalLine struct {
	number int // of its first physical line
	text   string
}

// logicalLines joins continued lines ("\" at the end) and drops comments
// and blank lines, including comment lines inside a continuation.
func logicalLines(src string) []logicalLine {
	var out []logicalLine
	var cur strings.Builder
	start := 0
	for i, raw := range strings.Split(src, "\n") {
		t := strings.TrimSpace(raw)
		if strings.HasPrefix(t, "#") || t == "" && cur.Len() == 0 {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(t, "\\") {
			cur.WriteString(strings.TrimSuffix(t, "\\"))
			cur.WriteString(" ")
			continue
		}
		cur.WriteString(t)
		out = append(out, logicalLine{number: start, text: cur.String()})
		cur.Reset()
	}
	if cur.Len() > 0 {
		out = append(out, logicalLine{number: start, text: cur.String()})
	}
	return out
}

// command reads ENTRYPOINT and CMD: a JSON array is the exec form; anything
// else is the shell form, run by /bin/sh -c.
func command(s string) []string {
	var exec []string
	if err := json.Unmarshal([]byte(s), &exec); err == nil {
		return exec
	}
	return []string{"/bin/sh", "-c", s}
}

func parseCopy(s string) (Copy, error) {
	var c Copy
	fields := strings.Fields(s)
	for len(fields) > 0 && strings.HasPrefix(fields[0], "--") {
		if v, ok := strings.CutPrefix(fields[0], "--from="); ok {
			c.From = strings.ToLower(v)
		}
		fields = fields[1:]
	}
	var exec []string
	if rest := strings.Join(fields, " "); strings.HasPrefix(rest, "[") && json.Unmarshal([]byte(rest), &exec) == nil {
		fields = exec
	}
	if len(fields) < 2 || slices.Contains(fields, "") {
		return Copy{}, fmt.Errorf("want COPY source... destination, got %q", s)
	}
	c.Sources, c.Dest = fields[:len(fields)-1], fields[len(fields)-1]
	return c, nil
}

// parseLabels reads key=value pairs, values bare, "double quoted" (with \"
// and \\ escapes, variables expanded) or 'single quoted' (taken as is).
func parseLabels(s string, args, into map[string]string) error {
	rest := strings.TrimSpace(s)
	for rest != "" {
		eq := strings.IndexAny(rest, "= \t")
		if eq <= 0 || rest[eq] != '=' {
			return fmt.Errorf("want key=value, got %q", rest)
		}
		key, err := unquote(rest[:eq], args)
		if err != nil {
			return err
		}
		value, n, err := scanValue(rest[eq+1:], args)
		if err != nil {
			return err
		}
		if key == "" {
			return fmt.Errorf("empty label key in %q", s)
		}
		into[key] = value
		rest = strings.TrimSpace(rest[eq+1+n:])
	}
	return nil
}

// scanValue reads one value from the start of s and returns it and how
// many bytes it took.
func scanValue(s string, args map[string]string) (string, int, error) {
	var b strings.Builder
	i := 0
	for i < len(s) && s[i] != ' ' && s[i] != '\t' {
		switch s[i] {
		case '"':
			j := i + 1
			var q strings.Builder
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' && j+1 < len(s) && (s[j+1] == '"' || s[j+1] == '\\') {
					j++
				}
				q.WriteByte(s[j])
			}
			if j >= len(s) {
				return "", 0, fmt.Errorf("unterminated \" in %q", s)
			}
			b.WriteString(expand(q.String(), args))
			i = j + 1
		case '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return "", 0, fmt.Errorf("unterminated ' in %q", s)
			}
			b.WriteString(s[i+1 : i+1+j])
			i += j + 2
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\"'", rune(s[j])) {
				j++
			}
			b.WriteString(expand(s[i:j], args))
			i = j
		}
	}
	return b.String(), i, nil
}

// unquote reads a whole word as scanValue does, and refuses anything after
// it.
func unquote(s string, args map[string]string) (string, error) {
	v, n, err := scanValue(s, args)
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(s[n:]) != "" {
		return "", fmt.Errorf("unexpected %q after %q", s[n:], s[:n])
	}
	return v, nil
}

// expand substitutes $NAME and ${NAME} from args (unset: empty, as Docker
// does); \$ is a literal dollar.
func expand(s string, args map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && s[i+1] == '$':
			b.WriteByte('$')
			i++
		case s[i] == '$' && i+1 < len(s) && s[i+1] == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			b.WriteString(args[s[i+2:i+end]])
			i += end
		case s[i] == '$':
			j := i + 1
			for j < len(s) && (s[j] == '_' || 'a' <= s[j] && s[j] <= 'z' || 'A' <= s[j] && s[j] <= 'Z' || j > i+1 && '0' <= s[j] && s[j] <= '9') {
				j++
			}
			if j == i+1 {
				b.WriteByte('$')
				continue
			}
			b.WriteString(args[s[i+1:j]])
			i = j - 1
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// StageByName finds a stage.
func StageByName(stages []Stage, name string) (Stage, bool) {
	for _, s := range stages {
		if s.Name == name {
			return s, true
		}
	}
	return Stage{}, false
}
