package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docDirs maps the package names docs/architecture.md uses to folders.
var docDirs = map[string]string{
	"journal": "journal", "aimsrc": "aimsrc", "aimdst": "aimdst", "nbd": "nbd", "proxy": "proxy",
	"dedupe": "dedupe", "transport": "transport", "push": "transport/push", "durable": "internal/durable",
}

var docIdent = regexp.MustCompile("`([a-z]+)\\.([A-Za-z_][A-Za-z0-9_]*)(?:\\.([A-Za-z_][A-Za-z0-9_]*))?`")

// TestArchitecturePathIsTrue: every package.Func, package.Type and
// package.Type.Method that docs/architecture.md names on the path of one
// journal file exists in the code, so the page stays true as the code moves.
func TestArchitecturePathIsTrue(t *testing.T) {
	b, err := os.ReadFile("../../docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "## The path of one journal file")
	if start < 0 {
		t.Fatal("docs/architecture.md has no section \"The path of one journal file\"")
	}
	section := doc[start:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	decls := map[string]map[string]bool{}
	found := 0
	for _, m := range docIdent.FindAllStringSubmatch(section, -1) {
		pkg, name := m[1], m[2]
		if m[3] != "" {
			name += "." + m[3]
		}
		dir, ok := docDirs[pkg]
		if !ok {
			t.Errorf("docs/architecture.md names %s.%s: package %q unknown to this test", pkg, name, pkg)
			continue
		}
		if decls[pkg] == nil {
			decls[pkg] = declsOf(t, filepath.Join("../..", dir))
		}
		if !decls[pkg][name] {
			t.Errorf("docs/architecture.md names %s.%s, which %s does not declare", pkg, name, dir)
		}
		found++
	}
	if found < 30 {
		t.Fatalf("only %d functions named on the path; the section lost its names", found)
	}
}

// declsOf returns the top-level functions and types ("Name") and methods
// ("Type.Method") declared in dir's non-test files.
func declsOf(t *testing.T, dir string) map[string]bool {
	t.Helper()
	pkgs, err := parser.ParseDir(token.NewFileSet(), dir, func(fi os.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, p := range pkgs {
		for _, f := range p.Files {
			for _, d := range f.Decls {
				switch d := d.(type) {
				case *ast.FuncDecl:
					if d.Recv == nil {
						out[d.Name.Name] = true
						continue
					}
					typ := d.Recv.List[0].Type
					if s, ok := typ.(*ast.StarExpr); ok {
						typ = s.X
					}
					if id, ok := typ.(*ast.Ident); ok {
						out[id.Name+"."+d.Name.Name] = true
					}
				case *ast.GenDecl:
					for _, s := range d.Specs {
						if ts, ok := s.(*ast.TypeSpec); ok {
							out[ts.Name.Name] = true
						}
					}
				}
			}
		}
	}
	return out
}
