package report

import "testing"

func TestReplace(t *testing.T) {
	tests := []struct {
		name, doc, body, want string
	}{
		{"new file", "", "a\n", "<!-- begin s (generated; do not edit) -->\na\n<!-- end s -->\n"},
		{"appended after prose", "# T\n", "a", "# T\n\n<!-- begin s (generated; do not edit) -->\na\n<!-- end s -->\n"},
		{"replaced in place, the rest kept",
			"x\n<!-- begin s (generated; do not edit) -->\nold\n<!-- end s -->\ny\n", "new\n",
			"x\n<!-- begin s (generated; do not edit) -->\nnew\n<!-- end s -->\ny\n"},
		{"other section untouched",
			"<!-- begin o (generated; do not edit) -->\nkeep\n<!-- end o -->\n", "a\n",
			"<!-- begin o (generated; do not edit) -->\nkeep\n<!-- end o -->\n\n<!-- begin s (generated; do not edit) -->\na\n<!-- end s -->\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Replace([]byte(tt.doc), "s", []byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
	if _, err := Replace([]byte("<!-- begin s (generated; do not edit) -->\nno end"), "s", nil); err == nil {
		t.Error("a begin marker without an end marker was accepted")
	}
}
