package injector

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// podPatch answers with the JSON patch that turns before into after,
// computed by controller-runtime (admission.PatchResponseFromRaw) from the
// two pods' JSON.
//
// The diff parses both documents into maps, which costs more than all the
// rest of an admission. So every field the mutation left unchanged, in the
// pod, its metadata, its spec and its containers, is emptied in both copies
// first (emptyEqual). That leaves the patch exactly as it was: the diff of
// two JSON objects is the union of the diffs of their members, the diff of
// two arrays that of the elements at each position plus the tail added or
// removed whole, and a member empty in both yields nothing. Maps are never
// emptied member by member (an annotation map emptied in one copy would
// turn "add one annotation" into "replace them all"), nor are elements
// removed from arrays, whose positions the patch paths name.
//
// Both documents come from the typed pod, so fields this build's API types
// do not know are never in the patch: the pod keeps them, as
// controller-runtime's defaulters keep them by default.
// patchDepth reaches pod, spec, containers, and each container's lists
// (env, volume mounts), where the mutation adds to what the pod had.
const patchDepth = 3

func podPatch(before, after *corev1.Pod) admission.Response {
	b, a := *before, *after // shallow copies: only their fields are reset
	if !emptyEqual(reflect.ValueOf(&b).Elem(), reflect.ValueOf(&a).Elem(), patchDepth) {
		return admission.Allowed("")
	}
	bj, err := json.Marshal(&b)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	aj, err := json.Marshal(&a)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	return admission.PatchResponseFromRaw(bj, aj)
}

// emptyEqual sets every exported field that is deeply equal in the
// structs x and y to its zero value in both. It descends depth more levels
// into fields that differ: struct fields, and the struct elements two
// slices hold at the same positions (the diff compares arrays position by
// position and adds or removes the tail whole, which is left intact). It
// never descends into a struct that encodes itself (json.Marshaler) or a
// field tagged omitzero, where emptying members could change the shape of
// the JSON. It reports whether x and y differ.
func emptyEqual(x, y reflect.Value, depth int) bool {
	differ := false
	for i := range x.NumField() {
		fx, fy := x.Field(i), y.Field(i)
		if !fx.CanSet() {
			// Unexported (the API types have none): left as it is and
			// taken as changed, which keeps the patch complete.
			differ = true
			continue
		}
		if fx.IsZero() && fy.IsZero() {
			// Most of a pod's fields: nothing to empty, and no boxing.
			continue
		}
		if reflect.DeepEqual(fx.Interface(), fy.Interface()) {
			fx.SetZero()
			fy.SetZero()
			continue
		}
		differ = true
		switch {
		case depth == 0 || strings.Contains(x.Type().Field(i).Tag.Get("json"), ",omitzero"):
			// An omitzero struct emptied to zero in one copy would vanish
			// from it, turning a member's change into the whole field's.
		case memberwise(fx.Type()):
			emptyEqual(fx, fy, depth-1)
		case fx.Kind() == reflect.Slice && memberwise(fx.Type().Elem()):
			emptyEqualElems(fx, fy, depth-1)
		}
	}
	return differ
}

// emptyEqualElems runs emptyEqual on the elements the slices x and y hold
// at the same positions, after pointing both at copies: the original
// arrays belong to the pods.
// memberwise reports whether encoding/json writes t as an object of its
// fields, which is what makes emptying equal fields leave the diff alone;
// a type with its own MarshalJSON may write anything.
func memberwise(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && !t.Implements(marshalerType) && !reflect.PointerTo(t).Implements(marshalerType)
}

var marshalerType = reflect.TypeFor[json.Marshaler]()

func emptyEqualElems(x, y reflect.Value, depth int) {
	x.Set(cloneSlice(x))
	y.Set(cloneSlice(y))
	for i := range min(x.Len(), y.Len()) {
		emptyEqual(x.Index(i), y.Index(i), depth)
	}
}

func cloneSlice(s reflect.Value) reflect.Value {
	if s.IsNil() {
		return s
	}
	c := reflect.MakeSlice(s.Type(), s.Len(), s.Len())
	reflect.Copy(c, s)
	return c
}
