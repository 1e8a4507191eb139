package template

import (
	"fmt"
	"text/template/parse"
)

// checkRecursion refuses a template whose named templates call each other
// in a cycle. text/template stops plain recursion at a depth of 100000, but
// a branching one runs for an exponential time, and executeTemplate starts
// each call at depth zero, so it recurses until the Go stack overflows and
// the process dies. Template names are constants (executeTemplate's must
// be one, checked here), so the call graph is known before rendering.
func checkRecursion(trees map[string]*parse.Tree, top string) error {
	calls := map[string][]string{}
	for name, tr := range trees {
		var err error
		if calls[name], err = callees(tr.Root, top, nil); err != nil {
			return err
		}
	}
	const (
		unseen = iota
		active
		finished
	)
	state := map[string]int{}
	var visit func(n string) error
	visit = func(n string) error {
		switch state[n] {
		case active:
			return fmt.Errorf("%w: template %q calls itself, directly or through others; recursion is not allowed", ErrDenied, n)
		case finished:
			return nil
		}
		state[n] = active
		for _, c := range calls[n] {
			if err := visit(c); err != nil {
				return err
			}
		}
		state[n] = finished
		return nil
	}
	for _, n := range sortedKeys(trees) {
		if err := visit(n); err != nil {
			return err
		}
	}
	return nil
}

// callees appends the names node calls with {{ template }} (or block) and
// executeTemplate. consul-template names the top-level template "", which
// maps to top here.
func callees(node parse.Node, top string, out []string) ([]string, error) {
	name := func(s string) string {
		if s == "" {
			return top
		}
		return s
	}
	var err error
	switch n := node.(type) {
	case *parse.ListNode:
		if n == nil {
			return out, nil
		}
		for _, c := range n.Nodes {
			if out, err = callees(c, top, out); err != nil {
				return nil, err
			}
		}
	case *parse.TemplateNode:
		out = append(out, name(n.Name))
		return callees(n.Pipe, top, out)
	case *parse.ActionNode:
		return callees(n.Pipe, top, out)
	case *parse.PipeNode:
		if n == nil {
			return out, nil
		}
		for _, c := range n.Cmds {
			if out, err = callees(c, top, out); err != nil {
				return nil, err
			}
		}
	case *parse.CommandNode:
		if id, ok := argAt(n.Args, 0).(*parse.IdentifierNode); ok && id.Ident == "executeTemplate" {
			s, ok := argAt(n.Args, 1).(*parse.StringNode)
			if !ok {
				return nil, fmt.Errorf("%w: executeTemplate must name its template with a constant string", ErrDenied)
			}
			out = append(out, name(s.Text))
		}
		for _, c := range n.Args {
			if out, err = callees(c, top, out); err != nil {
				return nil, err
			}
		}
	case *parse.ChainNode:
		return callees(n.Node, top, out)
	case *parse.IfNode:
		return branchCallees(&n.BranchNode, top, out)
	case *parse.RangeNode:
		return branchCallees(&n.BranchNode, top, out)
	case *parse.WithNode:
		return branchCallees(&n.BranchNode, top, out)
	}
	return out, nil
}

func branchCallees(b *parse.BranchNode, top string, out []string) ([]string, error) {
	var err error
	for _, n := range []parse.Node{b.Pipe, b.List, b.ElseList} {
		if out, err = callees(n, top, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func argAt(args []parse.Node, i int) parse.Node {
	if i < len(args) {
		return args[i]
	}
	return nil
}
