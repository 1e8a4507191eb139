// Command images builds the product images without a Docker engine
// (`make images`): the static binaries as the Dockerfile builds them, then
// one image archive per image in -out.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/blinkchamber/blinkchamber/pkg/images"
)

func main() {
	o := images.Options{ModuleDir: "."}
	flag.StringVar(&o.OutDir, "out", "bin/images", "directory for <image>.tar (and the binaries, under bin/)")
	flag.StringVar(&o.Version, "version", "dev", "version stamped into the binaries, the tag and the version label")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	built, err := images.BuildProducts(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
	for _, b := range built {
		fmt.Printf("%-9s %-40s %s %s\n", b.Name, b.Ref, b.Archive, b.Digest)
	}
}
