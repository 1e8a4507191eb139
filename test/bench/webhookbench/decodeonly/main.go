// Command decodeonly is webhookbench's reference webhook: it decodes each
// AdmissionReview and the pod in it as every Go pod webhook must, in one
// pass with the API machinery's case-sensitive JSON decoder (as the
// injector does; vault-k8s decodes the review and then the pod), and
// answers with a prepared review read from a file. No mutation, no patch computed. Its throughput on the same
// machine, TLS and HTTP/2 is the ceiling for any webhook built this way,
// including one that writes its JSON patch by hand as vault-k8s does.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	kjson "sigs.k8s.io/json"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	certDir := flag.String("cert-dir", "", "directory with tls.crt and tls.key")
	answer := flag.String("answer", "", "file holding the AdmissionReview to answer every request with")
	flag.Parse()
	if err := run(*addr, *certDir, *answer); err != nil {
		fmt.Fprintln(os.Stderr, "decodeonly:", err)
		os.Exit(1)
	}
}

func run(addr, certDir, answerFile string) error {
	if certDir == "" || answerFile == "" {
		return fmt.Errorf("-cert-dir and -answer are required")
	}
	answer, err := os.ReadFile(answerFile)
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(certDir, "tls.crt"), filepath.Join(certDir, "tls.key"))
	if err != nil {
		return err
	}
	srv := &http.Server{
		Addr:      addr,
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serve(w, r, answer) }),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2"}},
	}
	return srv.ListenAndServeTLS("", "")
}

// podReview is decoded in one pass, the pod straight into its type, as
// the injector decodes it (pkg/injector's review.go).
type podReview struct {
	Request *struct {
		admissionv1.AdmissionRequest `json:",inline"`
		Pod                          *corev1.Pod `json:"object"`
	} `json:"request"`
}

func serve(w http.ResponseWriter, r *http.Request, answer []byte) {
	if r.Method == http.MethodGet {
		// Readiness, for the benchmark to wait on.
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 7<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var review podReview
	if err := kjson.UnmarshalCaseSensitivePreserveInts(body, &review); err != nil || review.Request == nil || review.Request.Pod == nil {
		http.Error(w, fmt.Sprintf("not a pod review: %v", err), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(answer)
}
