// Package template is the agent's consul-template-compatible templating:
// the sandbox that decides which template functions may run, the allowed
// functions themselves (consul-template's names and output, without
// linking consul-template), and rendering with atomic writes.
//
// The injector validates templates at admission with Validate and the agent
// validates them again at start with the same function, so a template the
// injector refused cannot run by editing the pod spec by hand.
package template

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/template/parse"
)

// MaxSize bounds one template; Kubernetes allows 256 KiB for all annotations
// together, and a secrets file larger than this is not a secrets file.
const MaxSize = 64 << 10

// ErrDenied is wrapped by Validate when a template calls a function outside
// the sandbox.
var ErrDenied = errors.New("function not allowed in the sandbox")

// ErrSyntax is wrapped by Validate when a template does not parse.
var ErrSyntax = errors.New("template does not parse")

// denied are consul-template functions that reach outside Vault and the
// template itself: they run commands, write or read local files, read the
// agent's environment, or call Consul and Nomad, which the agent has no
// access to. They are named in errors so users know why.
var denied = map[string]string{
	"plugin":           "runs an arbitrary command",
	"writeToFile":      "writes arbitrary files",
	"file":             "reads local files",
	"env":              "reads the agent's environment",
	"mustEnv":          "reads the agent's environment",
	"envOrDefault":     "reads the agent's environment",
	"key":              "reads Consul, which the agent does not use",
	"keyExists":        "reads Consul, which the agent does not use",
	"keyOrDefault":     "reads Consul, which the agent does not use",
	"ls":               "reads Consul, which the agent does not use",
	"safeLs":           "reads Consul, which the agent does not use",
	"tree":             "reads Consul, which the agent does not use",
	"safeTree":         "reads Consul, which the agent does not use",
	"service":          "reads Consul, which the agent does not use",
	"services":         "reads Consul, which the agent does not use",
	"connect":          "reads Consul, which the agent does not use",
	"node":             "reads Consul, which the agent does not use",
	"nodes":            "reads Consul, which the agent does not use",
	"datacenters":      "reads Consul, which the agent does not use",
	"partitions":       "reads Consul, which the agent does not use",
	"peerings":         "reads Consul, which the agent does not use",
	"exportedServices": "reads Consul, which the agent does not use",
	"caRoots":          "reads Consul, which the agent does not use",
	"caLeaf":           "reads Consul, which the agent does not use",
	"nomadServices":    "reads Nomad, which the agent does not use",
	"nomadService":     "reads Nomad, which the agent does not use",
	"nomadVarList":     "reads Nomad, which the agent does not use",
	"nomadVarListSafe": "reads Nomad, which the agent does not use",
	"nomadVar":         "reads Nomad, which the agent does not use",
	"nomadVarExists":   "reads Nomad, which the agent does not use",
	"sockaddr":         "inspects the agent's network interfaces",
	// Unbounded generators: one call can ask for gigabytes.
	"sprig_until":     "builds a sequence of unbounded length; use loop, which is bounded",
	"sprig_untilStep": "builds a sequence of unbounded length; use loop, which is bounded",
	"sprig_seq":       "builds a sequence of unbounded length; use loop, which is bounded",
	"sprig_repeat":    "builds a string of unbounded length",
	// sprig counts these hermetic, but their output is not a function of
	// their arguments: a file would change at every render, and the
	// promise is that templates read no clock and no random source.
	"sprig_randInt":                  "reads a random source",
	"sprig_shuffle":                  "reads a random source",
	"sprig_bcrypt":                   "reads a random source (the salt)",
	"sprig_htpasswd":                 "reads a random source (the bcrypt salt)",
	"sprig_encryptAES":               "reads a random source (the IV)",
	"sprig_genPrivateKey":            "reads a random source (the key)",
	"sprig_genCA":                    "reads a random source and the clock (the key, serial and validity)",
	"sprig_genCAWithKey":             "reads a random source and the clock (the serial and validity)",
	"sprig_genSelfSignedCert":        "reads a random source and the clock (the key, serial and validity)",
	"sprig_genSelfSignedCertWithKey": "reads a random source and the clock (the serial and validity)",
	"sprig_genSignedCert":            "reads a random source and the clock (the key, serial and validity)",
	"sprig_genSignedCertWithKey":     "reads a random source and the clock (the serial and validity)",
	"sprig_ago":                      "reads the clock",
	"sprig_durationRound":            "reads the clock (given a date, it rounds the time since)",
}

// allowed are the functions a template may call: text/template's builtins
// and consul-template's Vault and pure helper functions. Anything else,
// including functions consul-template may add later, is refused. Sprig
// functions (prefixed sprig_) are allowed when they are among sprig's
// hermetic ones, which the agent binds (sprigFuncs), but for those in
// denied.
var allowed = setOf(
	// text/template builtins
	"and", "or", "not", "len", "index", "slice", "print", "printf", "println",
	"html", "js", "urlquery", "call", "eq", "ne", "lt", "le", "gt", "ge",
	// Vault
	"secret", "secrets",
	// pure helpers
	"scratch", "base64Decode", "base64Encode", "base64URLDecode", "base64URLEncode",
	"byKey", "byTag", "byPort", "byMeta", "contains", "containsAll", "containsAny",
	"containsNone", "containsNotAll", "executeTemplate", "explode", "explodeMap",
	"mergeMap", "mergeMapWithOverride", "in", "indent", "loop", "join", "trim",
	"trimPrefix", "trimSuffix", "trimSpace", "parseBool", "parseFloat", "parseInt",
	"parseJSON", "parseUint", "parseYAML", "regexReplaceAll", "regexMatch",
	"replaceAll", "sha256Hex", "md5sum", "hmacSHA256Hex", "timestamp", "toLower",
	"toJSON", "toJSONPretty", "toUnescapedJSON", "toUnescapedJSONPretty", "toTitle",
	"toTOML", "toUpper", "toYAML", "split", "splitToMap",
	"add", "subtract", "multiply", "divide", "modulo", "minimum", "maximum",
)

func setOf(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// sprigEnv are sprig's environment readers. consul-template no longer
// ships them, and sprig does not count them hermetic, but they must never
// be admitted should either change.
var sprigEnv = setOf("sprig_env", "sprig_expandenv")

// Allowed reports whether a template may call the named function. It is
// exactly the set the agent can bind, so a template the injector admits
// does not fail at the agent's start for an unknown function.
func Allowed(name string) bool {
	if _, bad := denied[name]; bad || sprigEnv[name] {
		return false
	}
	if n, ok := strings.CutPrefix(name, "sprig_"); ok {
		_, bound := sprigFuncs()[n]
		return bound
	}
	return allowed[name]
}

// refusal says why a function Allowed refuses is refused.
func refusal(name string) error {
	if why, ok := denied[name]; ok {
		return fmt.Errorf("%w: %q %s", ErrDenied, name, why)
	}
	return fmt.Errorf("%w: %q %s", ErrDenied, name, refusalReason(name))
}

// refusalReason is why name is refused, after the name.
func refusalReason(name string) string {
	if why, ok := denied[name]; ok {
		return why
	}
	n, isSprig := strings.CutPrefix(name, "sprig_")
	switch {
	case !isSprig:
		return "is not a known template function"
	case sprigAll()[n] != nil:
		return "is not one of sprig's hermetic functions: it reads the clock, the network, the environment or a random source, which the sandbox does not offer"
	}
	return "is not a sprig function"
}

// Validate parses a template and checks every function it calls against the
// sandbox. Errors never quote the template text, which may hold literals.
func Validate(text string) error {
	_, err := check(text)
	return err
}

// check is Validate that also returns the names of the functions the
// template calls.
func check(text string) (map[string]bool, error) {
	if strings.TrimSpace(text) == "" {
		return nil, fmt.Errorf("%w: template is empty", ErrSyntax)
	}
	if len(text) > MaxSize {
		return nil, fmt.Errorf("%w: template is %d bytes, more than the limit of %d", ErrSyntax, len(text), MaxSize)
	}
	t := parse.New("template")
	t.Mode = parse.SkipFuncCheck
	trees := map[string]*parse.Tree{}
	if _, err := t.Parse(text, "{{", "}}", trees); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrSyntax, syntaxReason(err))
	}
	used := map[string]bool{}
	for _, n := range sortedKeys(trees) {
		if err := checkNode(trees[n].Root, used); err != nil {
			return nil, err
		}
		if err := checkVaultLiterals(trees[n], trees[n].Root); err != nil {
			return nil, err
		}
	}
	return used, checkRecursion(trees, t.ParseName)
}

// syntaxReason drops text/template's "template: NAME:" prefix, keeping the
// line number and the reason.
func syntaxReason(err error) string {
	return strings.TrimPrefix(err.Error(), "template: ")
}

func sortedKeys(m map[string]*parse.Tree) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func checkNode(n parse.Node, used map[string]bool) error {
	switch n := n.(type) {
	case nil:
		return nil
	case *parse.IdentifierNode:
		if !Allowed(n.Ident) {
			return refusal(n.Ident)
		}
		used[n.Ident] = true
		return nil
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		return checkAll(n.Nodes, used)
	case *parse.ActionNode:
		return checkNode(n.Pipe, used)
	case *parse.PipeNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Cmds {
			if err := checkNode(c, used); err != nil {
				return err
			}
		}
		return nil
	case *parse.CommandNode:
		return checkAll(n.Args, used)
	case *parse.ChainNode:
		return checkNode(n.Node, used)
	case *parse.IfNode:
		return checkBranch(&n.BranchNode, used)
	case *parse.RangeNode:
		return checkBranch(&n.BranchNode, used)
	case *parse.WithNode:
		return checkBranch(&n.BranchNode, used)
	case *parse.TemplateNode:
		return checkNode(n.Pipe, used)
	default:
		// Text, fields, variables, constants, break/continue, comments: no calls.
		return nil
	}
}

func checkBranch(b *parse.BranchNode, used map[string]bool) error {
	for _, n := range []parse.Node{b.Pipe, b.List, b.ElseList} {
		if err := checkNode(n, used); err != nil {
			return err
		}
	}
	return nil
}

func checkAll(nodes []parse.Node, used map[string]bool) error {
	for _, c := range nodes {
		if err := checkNode(c, used); err != nil {
			return err
		}
	}
	return nil
}

// Functions are the names a template may call, sorted: the list the
// injector and the agent check (Allowed), from which docs/templates.md is
// generated.
func Functions() []string {
	var out []string
	for n := range allowed {
		out = append(out, n)
	}
	for n := range sprigFuncs() {
		if Allowed("sprig_" + n) {
			out = append(out, "sprig_"+n)
		}
	}
	sort.Strings(out)
	return out
}

// Refused are the known function names a template may not call, with why,
// sorted by name: consul-template's and sprig's that Allowed refuses.
func Refused() [][2]string {
	names := map[string]bool{}
	for n := range denied {
		names[n] = true
	}
	for n := range sprigAll() {
		names["sprig_"+n] = true
	}
	var out [][2]string
	for _, n := range sortedNames(names) {
		if !Allowed(n) {
			out = append(out, [2]string{n, refusalReason(n)})
		}
	}
	return out
}

func sortedNames(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
