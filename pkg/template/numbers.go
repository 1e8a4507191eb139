package template

import (
	"reflect"
)

// The arithmetic helpers take their operands as consul-template does:
// `{{ 10 | subtract 3 }}` is subtract(3, 10), 10 - 3. Integers of any
// size are int64, unsigned ones uint64 when both are, and a float on either
// side makes the result float64; modulo takes no floats. Integer division
// by zero is an error, as under consul-template (where it panics).

type numKind int

const (
	notNumber numKind = iota
	intNumber
	uintNumber
	floatNumber
)

func isInt(k reflect.Kind) bool { return k >= reflect.Int && k <= reflect.Int64 }

func isUint(k reflect.Kind) bool { return k >= reflect.Uint && k <= reflect.Uint64 }

func isFloat(k reflect.Kind) bool { return k == reflect.Float32 || k == reflect.Float64 }

func kindOf(v reflect.Value, floats bool) numKind {
	switch k := v.Kind(); {
	case isInt(k):
		return intNumber
	case isUint(k):
		return uintNumber
	case floats && isFloat(k):
		return floatNumber
	}
	return notNumber
}

func asInt(v reflect.Value, k numKind) int64 {
	if k == uintNumber {
		return int64(v.Uint())
	}
	return v.Int()
}

func asFloat(v reflect.Value, k numKind) float64 {
	switch k {
	case intNumber:
		return float64(v.Int())
	case uintNumber:
		return float64(v.Uint())
	}
	return v.Float()
}

// operands classifies a and b, or says which is not a number.
func operands(name string, b, a any, floats bool) (av, bv reflect.Value, ak, bk numKind, err error) {
	av, bv = reflect.ValueOf(a), reflect.ValueOf(b)
	if ak = kindOf(av, floats); ak == notNumber {
		return av, bv, ak, bk, failf(name, "an operand of type %T is not a number it takes", a)
	}
	if bk = kindOf(bv, floats); bk == notNumber {
		return av, bv, ak, bk, failf(name, "an operand of type %T is not a number it takes", b)
	}
	return av, bv, ak, bk, nil
}

// arithmetic builds a helper computing a op b; onFloat nil means floats
// are refused, and divides that b is a divisor, which must not be an
// integer zero.
func arithmetic(name string, divides bool, onInt func(a, b int64) int64, onUint func(a, b uint64) uint64, onFloat func(a, b float64) float64) func(b, a any) (any, error) {
	return func(b, a any) (any, error) {
		av, bv, ak, bk, err := operands(name, b, a, onFloat != nil)
		switch {
		case err != nil:
			return nil, err
		case ak == floatNumber || bk == floatNumber:
			return onFloat(asFloat(av, ak), asFloat(bv, bk)), nil
		case divides && bv.IsZero():
			return nil, failf(name, "integer division by zero")
		case ak == uintNumber && bk == uintNumber:
			return onUint(av.Uint(), bv.Uint()), nil
		}
		return onInt(asInt(av, ak), asInt(bv, bk)), nil
	}
}

// pick builds minimum and maximum: a when takeA(compare(a, b)), else b,
// each as its own kind of number (int64, uint64 or float64).
func pick(name string, takeA func(int) bool) func(b, a any) (any, error) {
	return func(b, a any) (any, error) {
		av, bv, ak, bk, err := operands(name, b, a, true)
		if err != nil {
			return nil, err
		}
		if takeA(compare(av, bv, ak, bk)) {
			return natural(av, ak), nil
		}
		return natural(bv, bk), nil
	}
}

func compare(av, bv reflect.Value, ak, bk numKind) int {
	switch {
	case ak == floatNumber || bk == floatNumber:
		return cmp3(asFloat(av, ak), asFloat(bv, bk))
	case ak == uintNumber && bk == uintNumber:
		return cmp3(av.Uint(), bv.Uint())
	}
	return cmp3(asInt(av, ak), asInt(bv, bk))
}

func cmp3[T int64 | uint64 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func natural(v reflect.Value, k numKind) any {
	switch k {
	case intNumber:
		return v.Int()
	case uintNumber:
		return v.Uint()
	}
	return v.Float()
}
