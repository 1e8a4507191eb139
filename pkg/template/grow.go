package template

import (
	"fmt"
	"regexp"
	"strings"
)

// The functions whose result can be many times the size of their arguments:
// a replacement put at every match (of an empty pattern, at every byte), a
// separator between every element or every few characters. Measuring the
// arguments (values.go) cannot bound them, so each works out its result's
// size, or an upper bound of it, before building it, and refuses past
// MaxOutput as the output itself does.

// boundedReplace is strings.ReplaceAll(s, from, to) for the function name:
// each of n matches grows s by len(to)-len(from).
func boundedReplace(name, from, to, s string) (string, error) {
	if n, grow := strings.Count(s, from), len(to)-len(from); n > 0 && grow > 0 && grow > (MaxOutput-len(s))/n {
		return "", tooLarge(name, "the replaced text")
	}
	return strings.ReplaceAll(s, from, to), nil
}

// boundedRegexReplace replaces every match of re in s with repl, expanding
// $ references when expand is set. The size is bounded first: the text
// outside the matches, plus repl per match, plus, for each $ in repl, at
// most the match again (a group is part of its match).
func boundedRegexReplace(name string, re *regexp.Regexp, s, repl string, expand bool) (string, error) {
	matches, matched := 0, 0
	re.ReplaceAllStringFunc(s, func(m string) string {
		matches++
		matched += len(m)
		return ""
	})
	refs := 0
	if expand {
		refs = strings.Count(repl, "$")
	}
	if size := len(s) - matched + matches*len(repl) + refs*matched; size > MaxOutput {
		return "", tooLarge(name, "the replaced text")
	}
	if expand {
		return re.ReplaceAllString(s, repl), nil
	}
	return re.ReplaceAllLiteralString(s, repl), nil
}

// regexReplacer is sprig's regexReplaceAll or regexReplaceAllLiteral
// (pattern, text, replacement), bounded.
func regexReplacer(name string, expand bool) func(pattern, s, repl string) (string, error) {
	return func(pattern, s, repl string) (string, error) {
		re, err := compileRegexp(name, pattern)
		if err != nil {
			return "", err
		}
		return boundedRegexReplace(name, re, s, repl, expand)
	}
}

// boundedWrapWith is sprig's wrapWith with its result bounded first: at
// most one wrap string after each byte.
func boundedWrapWith(n int, wrap, s string) (string, error) {
	if len(wrap) > 0 && len(s)+1 > (MaxOutput-len(s))/len(wrap) {
		return "", tooLarge("sprig_wrapWith", "the wrapped text")
	}
	return sprigFuncs()["wrapWith"].(func(int, string, string) string)(n, wrap, s), nil
}

// boundedSprigJoin is sprig's join (its elements as toStrings makes them,
// joined by sep) with the joined size checked first.
func boundedSprigJoin(sep string, v any) (string, error) {
	parts := sprigFuncs()["toStrings"].(func(any) []string)(v)
	size := 0
	for _, p := range parts {
		size += len(p)
	}
	if len(parts) > 1 && (size > MaxOutput || len(sep) > (MaxOutput-size)/(len(parts)-1)) {
		return "", tooLarge("sprig_join", "the joined text")
	}
	return strings.Join(parts, sep), nil
}

// boundedCat is sprig's cat (its non-nil arguments printed and joined by
// spaces) with the size of the whole checked before it is built.
func boundedCat(args ...any) (string, error) {
	size := 0
	for _, a := range args {
		switch v := a.(type) {
		case nil:
		case string:
			size += len(v) + 1
		default:
			size += len(fmt.Sprint(v)) + 1
		}
		if size > MaxOutput+1 {
			return "", tooLarge("sprig_cat", "the joined text")
		}
	}
	return sprigFuncs()["cat"].(func(...any) string)(args...), nil
}
