package cli

// blinkchamber images list|push: the images the chart names, and mirroring
// the ones built here (`make images`) into a registry an air-gapped cluster
// can reach.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/blinkchamber/blinkchamber/pkg/images"
)

const imagesUsage = `usage: blinkchamber images list [--from DIR] [--chart DIR] [--values FILE]...
       blinkchamber images push --registry HOST[:PORT][/PATH] [--from DIR] [--insecure] [--chart DIR] [--values FILE]...

list: every image the chart's values name, and which archive in --from
holds it. push: copies each of them found in --from to HOST, under the same
repository path without its original registry host (ghcr.io/blinkchamber/agent:v0.1.0
becomes HOST/blinkchamber/agent:v0.1.0); the images built here must all be
there. Images this project does not build (Vault, the app stack) are pushed
when an archive holds them and listed otherwise.

flags:
`

// imagesOptions are the flags of `images list` and `images push`.
type imagesOptions struct {
	From     string
	Chart    string
	Values   []string
	Registry string
	Insecure bool
}

func (o *imagesOptions) validate(push bool) error {
	var errs []string
	if o.From == "" {
		errs = append(errs, "--from: must name a directory")
	}
	if o.Chart == "" {
		errs = append(errs, "--chart: must name the chart's directory")
	}
	switch {
	case push && o.Registry == "":
		errs = append(errs, "--registry: required (HOST[:PORT][/PATH])")
	case push:
		if _, err := images.MirrorRef("example/image:tag", o.Registry); err != nil {
			errs = append(errs, "--registry: "+err.Error())
		}
	case o.Registry != "" || o.Insecure:
		errs = append(errs, "--registry and --insecure are for images push")
	}
	if len(errs) > 0 {
		return &usageError{strings.Join(errs, "\n")}
	}
	return nil
}

func imagesCmd(ctx context.Context, global *Options, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "list" && args[0] != "push" {
		return &usageError{strings.TrimSuffix(imagesUsage, "\nflags:\n")}
	}
	sub := args[0]
	o := &imagesOptions{}
	fs := flag.NewFlagSet("blinkchamber images "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, imagesUsage); fs.PrintDefaults() }
	fs.StringVar(&o.From, "from", "bin/images", "directory of image archives (make images writes bin/images)")
	fs.StringVar(&o.Chart, "chart", global.Chart, "the chart whose values name the images")
	fs.Var((*stringList)(&o.Values), "values", "values file merged over the chart's values.yaml, as helm -f (repeatable)")
	fs.StringVar(&o.Registry, "registry", "", "push: the registry, HOST[:PORT][/PATH], as global.imageRegistry")
	fs.BoolVar(&o.Insecure, "insecure", false, "push: allow plain HTTP to the registry")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("images %s takes no arguments, got %q", sub, fs.Args())}
	}
	if err := o.validate(sub == "push"); err != nil {
		return err
	}
	chartImages, err := images.ChartImages(o.Chart, o.Values...)
	if err != nil {
		return err
	}
	catalog, err := images.ReadCatalog(o.From)
	if err != nil {
		return err
	}
	rows := make([]imageRow, 0, len(chartImages))
	for _, c := range chartImages {
		r := imageRow{ChartImage: c, Image: c.Ref()}
		r.Archive, _ = catalog.Find(c.Ref())
		rows = append(rows, r)
	}
	if sub == "list" {
		return listImages(global.Output, rows, o.From, stdout)
	}
	return pushImages(ctx, global.Output, o, rows, stdout)
}

// imageRow is one image of `images list` and `images push`.
type imageRow struct {
	images.ChartImage
	Image   string `json:"image"`
	Archive string `json:"archive,omitempty"`
	Pushed  string `json:"pushed,omitempty"`
	Digest  string `json:"digest,omitempty"`
}

func (r imageRow) note(from string) string {
	switch {
	case r.Archive != "":
		return r.Archive
	case r.Product != "":
		return fmt.Sprintf("built here, not in %s: make images VERSION=%s", from, r.Tag)
	}
	return "external: not built here; mirror it with your registry's tools"
}

func listImages(output string, rows []imageRow, from string, w io.Writer) error {
	if output == "json" {
		return writeJSON(w, rows)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VALUE\tIMAGE\tARCHIVE")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Value, r.Ref(), r.note(from))
	}
	return tw.Flush()
}

// ErrImagesMissing is returned by push when an image built here has no
// archive in --from.
var ErrImagesMissing = errors.New("images missing")

func pushImages(ctx context.Context, output string, o *imagesOptions, rows []imageRow, w io.Writer) error {
	var missing []string
	for _, r := range rows {
		if r.Archive == "" && r.Product != "" {
			missing = append(missing, r.Ref())
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: no archive in %s holds %s; build them with make images VERSION=<tag>, or name the built tag with --values",
			ErrImagesMissing, o.From, strings.Join(missing, ", "))
	}
	for i, r := range rows {
		if r.Archive == "" {
			if output != "json" {
				fmt.Fprintf(w, "skipped %s: external, not in %s\n", r.Ref(), o.From)
			}
			continue
		}
		target, err := images.MirrorRef(r.Ref(), o.Registry)
		if err != nil {
			return err
		}
		digest, err := images.Push(ctx, r.Archive, r.Ref(), target, images.PushOptions{Insecure: o.Insecure})
		if err != nil {
			return err
		}
		rows[i].Pushed, rows[i].Digest = target, digest
		if output != "json" {
			fmt.Fprintf(w, "pushed %s@%s\n", target, digest)
		}
	}
	if output == "json" {
		return writeJSON(w, rows)
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
