package template

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
	"text/template/parse"
)

// ErrTokenEndpoint is wrapped when a template asks for a Vault endpoint
// whose answer holds a Vault token or what makes one: the agent's own token
// (lookup-self), a new token (create, any login), a wrapped answer, or a
// bearer credential minted from the agent's identity. The agent's token is
// the pod's whole Vault identity and must never reach the app's files.
var ErrTokenEndpoint = errors.New("the Vault endpoint answers with a token and is refused")

// tokenEndpoints are the refused endpoints, as segment prefixes of the
// canonical path (see canonicalVaultPath).
// The list, with why each is refused, is in docs/templates.md.
var tokenEndpoints = []struct {
	prefix []string
	why    string
}{
	// Every auth method's endpoints: the token store (lookup-self, lookup,
	// create, create-orphan, renew-self, roles, accessors), every login
	// (auth/<mount>/login, auth/<mount>/login/<user>), OIDC callbacks, and
	// AppRole secret IDs, which are login credentials. A template reads
	// secrets; nothing under auth/ is one.
	{[]string{"auth"}, "every endpoint under auth/ (the token store, logins, secret IDs) is refused"},
	{[]string{"sys", "wrapping"}, "response wrapping (wrap, unwrap, lookup, rewrap) hands out or opens wrapping tokens"},
	{[]string{"cubbyhole"}, "the cubbyhole is the agent token's private storage (cubbyhole/response holds wrapped answers)"},
	{[]string{"identity", "oidc", "token"}, "an identity token is a bearer credential of the agent's Vault identity"},
	{[]string{"sys", "generate-root"}, "root token generation"},
	{[]string{"sys", "generate-recovery-token"}, "recovery token generation"},
	{[]string{"sys", "decode-token"}, "decodes generated root tokens"},
	{[]string{"sys", "replication"}, "replication answers carry activation tokens"},
	{[]string{"sys", "control-group"}, "control group authorisation answers with wrapping tokens"},
}

// checkTokenEndpoint returns an error wrapping ErrTokenEndpoint when p, as
// Vault would route it, is a refused endpoint. The endpoint may follow any
// number of leading segments: with Vault Enterprise namespaces,
// "ns1/auth/token/lookup-self" reaches the token store of namespace ns1,
// so a KV path holding such segments ("secret/data/app/auth/x") is refused
// too. The error names the endpoint family, never p (which may be
// computed from a secret).
func checkTokenEndpoint(p string) error {
	segs := strings.Split(canonicalVaultPath(p), "/")
	for i := range segs {
		for _, e := range tokenEndpoints {
			if hasSegments(segs[i:], e.prefix) {
				return fmt.Errorf("%w: %s", ErrTokenEndpoint, e.why)
			}
		}
	}
	return nil
}

// hasSegments reports whether segs starts with prefix and has at least
// two segments: auth/<mount> is an endpoint family, but "auth" alone is
// also a KV key name.
func hasSegments(segs, prefix []string) bool {
	if len(segs) < max(len(prefix), 2) {
		return false
	}
	for i, p := range prefix {
		if segs[i] != p {
			return false
		}
	}
	return true
}

// canonicalVaultPath is p as Vault's router would see it, erring towards
// matching more: URL escapes decoded (repeatedly, so %252F is a slash too),
// the query and fragment cut off, "." and ".." segments resolved, empty
// segments dropped (Go's HTTP server and the Vault client both clean the
// path), any leading "v1/" dropped, and lower-cased (the router is
// case-sensitive, so lower-casing can only refuse more).
func canonicalVaultPath(p string) string {
	for range 4 {
		d, err := url.PathUnescape(p)
		if err != nil || d == p {
			break
		}
		p = d
	}
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	p = strings.ToLower(strings.ReplaceAll(p, `\`, "/"))
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	for {
		rest, ok := strings.CutPrefix(p, "v1/")
		if !ok {
			return p
		}
		p = rest
	}
}

// vaultFuncs are the template functions that send their first argument to
// Vault as a path.
var vaultFuncs = setOf("secret", "secrets")

// CheckTokenEndpoint is checkTokenEndpoint for the agent's transport, which
// checks the final URL path of every request a template makes.
func CheckTokenEndpoint(p string) error { return checkTokenEndpoint(p) }

// checkVaultLiterals refuses, at admission, a Vault function given a
// literal path that is a token endpoint, as an argument
// (`secret "auth/token/lookup-self"`) or piped (`"auth/..." | secret`).
// Paths computed while rendering are checked by the function itself
// (recorder.secret) and again by the agent's transport. The error names
// the function and its position, not the path.
func checkVaultLiterals(tr *parse.Tree, n parse.Node) error {
	var err error
	walkNodes(n, func(n parse.Node) {
		pipe, ok := n.(*parse.PipeNode)
		if !ok || pipe == nil || err != nil {
			return
		}
		for i, c := range pipe.Cmds {
			fn, ok := argAt(c.Args, 0).(*parse.IdentifierNode)
			if !ok || !vaultFuncs[fn.Ident] {
				continue
			}
			lit, isLit := argAt(c.Args, 1).(*parse.StringNode)
			if !isLit && len(c.Args) == 1 && i > 0 && len(pipe.Cmds[i-1].Args) == 1 {
				lit, isLit = pipe.Cmds[i-1].Args[0].(*parse.StringNode)
			}
			if !isLit {
				continue
			}
			if terr := checkTokenEndpoint(lit.Text); terr != nil {
				loc, _ := tr.ErrorContext(fn)
				err = fmt.Errorf("%w: %s: %s reaches Vault: %w", ErrDenied, loc, fn.Ident, terr)
			}
		}
	})
	return err
}

// walkNodes calls f on n and every node under it.
func walkNodes(n parse.Node, f func(parse.Node)) {
	if n == nil {
		return
	}
	f(n)
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			walkNodes(c, f)
		}
	case *parse.ActionNode:
		walkNodes(n.Pipe, f)
	case *parse.PipeNode:
		if n == nil {
			return
		}
		for _, c := range n.Cmds {
			walkNodes(c, f)
		}
	case *parse.CommandNode:
		for _, c := range n.Args {
			walkNodes(c, f)
		}
	case *parse.ChainNode:
		walkNodes(n.Node, f)
	case *parse.IfNode:
		walkBranch(&n.BranchNode, f)
	case *parse.RangeNode:
		walkBranch(&n.BranchNode, f)
	case *parse.WithNode:
		walkBranch(&n.BranchNode, f)
	case *parse.TemplateNode:
		walkNodes(n.Pipe, f)
	}
}

func walkBranch(b *parse.BranchNode, f func(parse.Node)) {
	walkNodes(b.Pipe, f)
	walkNodes(b.List, f)
	walkNodes(b.ElseList, f)
}
