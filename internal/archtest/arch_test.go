// Package archtest enforces the import arrows of DESIGN.md: each top-level
// package may import only the parts of aimwan that its row allows, so the
// layering stays true as the code grows (a lint rule run by `make test`).
package archtest

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/aimwan/aimwan/"

// allowed lists, per top-level folder (or a package named by its path, such
// as internal/metrics), the aimwan packages (and their subpackages) it may
// import besides its own subpackages. Folders absent from the map (cmd, sim,
// e2e, the rest of internal) may import anything.
var allowed = map[string][]string{
	"journal":   {"internal/units", "internal/durable"},
	"nbd":       {"internal/units", "internal/durable", "internal/netaddr", "internal/accept"},
	"dedupe":    {"internal/units", "internal/durable", "internal/metrics"},
	"reports":   {"internal/units", "internal/durable", "internal/metrics"},
	"transport": {"internal/units", "internal/durable", "internal/metrics", "internal/accept", "journal"},
	// The storage nodes speak the LAN push protocol with the node identities
	// of transport/identity, never the QUIC transport itself.
	"aimsrc": {"internal/units", "internal/durable", "internal/netaddr", "internal/metrics", "internal/ctlapi",
		"journal", "nbd", "transport/push", "transport/identity"},
	"aimdst": {"internal/units", "internal/durable", "internal/metrics", "internal/ctlapi",
		"journal", "nbd", "transport/push", "transport/identity"},
	"proxy": {"internal/units", "internal/durable", "internal/metrics", "journal", "dedupe", "transport"},
	// The push conformance suite is test support: it may use the shared
	// test helpers, which no production package of these layers may.
	"transport/push/pushtest": {"internal/units", "internal/durable", "journal", "transport/push", "internal/testkit"},
	// Every daemon imports internal/metrics, so it imports none of them.
	"internal/metrics": {"internal/netaddr", "internal/version", "internal/accept"},
	// The shared accept loop and the control API guard are leaves.
	"internal/accept": {},
	"internal/ctlapi": {"internal/durable"},
}

type pkg struct {
	ImportPath string
	Imports    []string
}

func TestImportArrows(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", "github.com/aimwan/aimwan/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	checked := 0
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		top := ruleFor(p.ImportPath)
		allow, ruled := allowed[top]
		for _, imp := range p.Imports {
			if !ruled || !strings.HasPrefix(imp, module) {
				continue
			}
			rel := strings.TrimPrefix(imp, module)
			if !within(rel, append([]string{top}, allow...)) {
				t.Errorf("%s imports %s: DESIGN.md's arrows allow %s to import only %v", p.ImportPath, imp, top, allow)
			}
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("go list returned no packages")
	}
}

// ruleFor returns the key of allowed that rules importPath: the longest key
// the package is, or is below; else its top-level folder (unruled).
func ruleFor(importPath string) string {
	rel := strings.TrimPrefix(importPath, module)
	best := ""
	for k := range allowed {
		if within(rel, []string{k}) && len(k) > len(best) {
			best = k
		}
	}
	if best != "" {
		return best
	}
	if i := strings.IndexByte(rel, '/'); i >= 0 {
		return rel[:i]
	}
	return rel
}

// within reports whether rel is one of roots or below one of them.
func within(rel string, roots []string) bool {
	for _, r := range roots {
		if rel == r || strings.HasPrefix(rel, r+"/") {
			return true
		}
	}
	return false
}

// testOnly are packages (or module prefixes) that exist for tests and must
// not be linked into the shipped binary: the testing package, the shared
// test helpers (internal/testkit/procs is the exception: `aimwan bench` and
// `aimwan sim chaos` run the chain with it) and modules only tests use.
var testOnly = []string{
	"testing",
	module + "internal/testkit",
	module + "internal/testkit/nbdtest",
	"github.com/Shopify/toxiproxy",
	"github.com/prometheus/client_golang/prometheus/testutil",
}

// TestBinaryLinksNoTestCode: `go list -deps` of cmd/aimwan names none of
// testOnly, so test code and test-only modules stay out of the binary
// (go.mod keeps the modules required because tests import them).
func TestBinaryLinksNoTestCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", module+"cmd/aimwan").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("go list -deps listed %d packages; want the binary's whole closure", len(deps))
	}
	for _, d := range deps {
		for _, bad := range testOnly {
			if d == bad || (strings.HasPrefix(d, bad+"/") && bad != module+"internal/testkit") {
				t.Errorf("the aimwan binary links %s (test-only)", d)
			}
		}
	}
}
