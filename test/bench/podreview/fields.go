package podreview

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// set is a node of a FieldsV1 set: "f:<field>" or "k:<key>" to children;
// "." marks a map or list item that is itself owned.
type set map[string]set

func (s set) MarshalJSON() ([]byte, error) {
	if s == nil {
		return []byte("{}"), nil
	}
	return json.Marshal(map[string]set(s))
}

// leaves is a set of owned scalar fields.
func leaves(names ...string) set {
	s := set{}
	for _, n := range names {
		s["f:"+n] = set{}
	}
	return s
}

func key(k any) string {
	b, _ := json.Marshal(k) // maps of strings and numbers always encode
	return "k:" + string(b)
}

// managedFields is what the API server records before admission for a pod
// the ReplicaSet controller (kube-controller-manager) creates: every field
// it set, defaults included. ServiceAccount admission's volume and mounts
// and the default tolerations come later, so they are not in it.
func managedFields(pod *corev1.Pod) []metav1.ManagedFieldsEntry {
	ann := set{".": {}}
	keys := make([]string, 0, len(pod.Annotations))
	for k := range pod.Annotations {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ann["f:"+k] = set{}
	}
	labels := set{".": {}}
	for k := range pod.Labels {
		labels["f:"+k] = set{}
	}
	owners := set{".": {}}
	for _, o := range pod.OwnerReferences {
		owners[key(map[string]string{"uid": string(o.UID)})] = leaves("apiVersion", "blockOwnerDeletion", "controller", "kind", "name", "uid")
		owners[key(map[string]string{"uid": string(o.UID)})]["."] = set{}
	}
	containers := set{}
	for _, c := range pod.Spec.Containers {
		cs := leaves("image", "imagePullPolicy", "name", "terminationMessagePath", "terminationMessagePolicy")
		cs["."] = set{}
		ports := set{".": {}}
		for _, p := range c.Ports {
			ports[key(map[string]any{"containerPort": p.ContainerPort, "protocol": p.Protocol})] = leaves("containerPort", "name", "protocol")
		}
		cs["f:ports"] = ports
		if len(c.Env) > 0 {
			env := set{".": {}}
			for _, e := range c.Env {
				env[key(map[string]string{"name": e.Name})] = leaves("name", "value")
			}
			cs["f:env"] = env
		}
		cs["f:resources"] = set{"f:limits": set{".": {}, "f:memory": {}}, "f:requests": set{".": {}, "f:cpu": {}, "f:memory": {}}}
		cs["f:readinessProbe"] = set{".": {}, "f:failureThreshold": {}, "f:periodSeconds": {}, "f:successThreshold": {}, "f:timeoutSeconds": {},
			"f:httpGet": set{".": {}, "f:path": {}, "f:port": {}, "f:scheme": {}}}
		containers[key(map[string]string{"name": c.Name})] = cs
	}
	spec := leaves("dnsPolicy", "enableServiceLinks", "restartPolicy", "schedulerName", "serviceAccount", "serviceAccountName", "terminationGracePeriodSeconds")
	spec["f:containers"] = containers
	spec["f:securityContext"] = set{}
	fields := set{
		"f:metadata": set{"f:annotations": ann, "f:generateName": {}, "f:labels": labels, "f:ownerReferences": owners},
		"f:spec":     spec,
	}
	raw, err := json.Marshal(fields)
	if err != nil {
		panic(fmt.Sprintf("encoding managed fields: %v", err)) // a map of maps always encodes
	}
	return []metav1.ManagedFieldsEntry{{
		Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1",
		Time: &metav1.Time{Time: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}, FieldsType: "FieldsV1",
		FieldsV1: &metav1.FieldsV1{Raw: raw},
	}}
}
