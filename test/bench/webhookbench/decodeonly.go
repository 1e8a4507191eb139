package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/blinkchamber/blinkchamber/test/harness"
)

// startDecodeOnly runs the decode-only reference webhook (./decodeonly)
// on the injector's certificates, answering every request with answer,
// the injector's own answer to the measured review, so that both send
// the same bytes.
func startDecodeOnly(ctx context.Context, bin, dir string, caPEM, answer []byte, runtime []string) (*served, error) {
	answerFile := filepath.Join(dir, "answer.json")
	if err := os.WriteFile(answerFile, answer, 0o600); err != nil {
		return nil, err
	}
	port, err := harness.FreePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s := &served{url: "https://" + addr + "/", caPEM: caPEM, name: "decode-only webhook", logPath: filepath.Join(dir, "decodeonly.log")}
	cmd := exec.Command(bin, "-addr", addr, "-cert-dir", filepath.Join(dir, "certs"), "-answer", answerFile)
	cmd.Env = append(os.Environ(), runtime...)
	if err := s.start(cmd); err != nil {
		return nil, err
	}
	c, err := s.client(1, true)
	if err != nil {
		_ = s.stop()
		return nil, err
	}
	if err := s.waitReady(ctx, c, s.url); err != nil {
		_ = s.stop()
		return nil, err
	}
	return s, nil
}
