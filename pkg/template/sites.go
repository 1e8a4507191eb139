package template

import (
	"fmt"
	"regexp"
	gotemplate "text/template"
	"text/template/parse"
)

// Call is where in a template a Vault request was made: what an error about
// that request may print instead of the request's path, which may be built
// from secret data.
type Call struct {
	// Pos is "<secret name>:line:col" of the call.
	Pos string `json:"pos"`
	// Text is the call's source text, cut at maxCallText bytes.
	Text string `json:"text"`
	// Literal is true when every argument of the call is a string constant:
	// the request's path and arguments are then the template's own text,
	// already visible in the pod spec, and may be printed.
	Literal bool `json:"literal,omitempty"`
}

// maxCallText bounds the source text an error quotes.
const maxCallText = 120

// siteIdent is the name a call site's function is bound under: each
// `secret` and `secrets` call gets a function of its own, so the request it
// makes knows where it was made. siteName maps the name back in messages.
var siteName = regexp.MustCompile(`\b(secrets?)_call[0-9]+\b`)

func siteIdent(fn string, i int) string { return fmt.Sprintf("%s_call%d", fn, i) }

// bindSites gives every `secret` and `secrets` call in tmpl (and the
// templates it defines) a function of its own that records its Call.
func (t *Template) bindSites(tmpl *gotemplate.Template) {
	funcs := gotemplate.FuncMap{}
	for _, sub := range tmpl.Templates() {
		if sub.Tree == nil {
			continue
		}
		tree := sub.Tree
		walkPipeCommands(tree.Root, func(cmd *parse.CommandNode, piped bool) {
			id, ok := cmd.Args[0].(*parse.IdentifierNode)
			if !ok || id.Ident != "secret" && id.Ident != "secrets" {
				return
			}
			loc, _ := tree.ErrorContext(id)
			// A command after the first of its pipeline gets the previous
			// command's result as its last argument: computed, whatever
			// the arguments written out.
			c := Call{Pos: t.name + loc, Text: cutText(cmd.String()), Literal: !piped && literalArgs(cmd.Args[1:])}
			name := siteIdent(id.Ident, len(funcs))
			if id.Ident == "secret" {
				funcs[name] = func(path string, rest ...string) (*Secret, error) { return t.cur.secret(c, path, rest...) }
			} else {
				funcs[name] = func(path string) ([]string, error) { return t.cur.secrets(c, path) }
			}
			id.Ident = name
		})
	}
	tmpl.Funcs(funcs)
}

// literalArgs reports whether a call's arguments are all string constants
// (and there is at least one: a path passed down a pipeline is computed).
func literalArgs(args []parse.Node) bool {
	for _, a := range args {
		if _, ok := a.(*parse.StringNode); !ok {
			return false
		}
	}
	return len(args) > 0
}

func cutText(s string) string {
	if len(s) <= maxCallText {
		return s
	}
	return s[:maxCallText] + "..."
}

// walkPipeCommands calls f for every command in n, nested ones included,
// saying whether the command is piped a value (not first in its pipeline).
func walkPipeCommands(n parse.Node, f func(cmd *parse.CommandNode, piped bool)) {
	walkNodes(n, func(n parse.Node) {
		pipe, ok := n.(*parse.PipeNode)
		if !ok || pipe == nil {
			return
		}
		for i, c := range pipe.Cmds {
			if len(c.Args) > 0 {
				f(c, i > 0)
			}
		}
	})
}
