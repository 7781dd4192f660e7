package reports

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// chromiumTimeout bounds one browser run.
const chromiumTimeout = 90 * time.Second

// findChromium returns the path of a Chromium binary, or "".
func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// runChromium runs headless Chromium with a fresh profile and the given
// extra arguments; it returns stdout and stderr.
func runChromium(t *testing.T, bin string, args ...string) (stdout, stderr []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), chromiumTimeout)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\nstderr:\n%s", args, err, errb.Bytes())
	}
	return out.Bytes(), errb.Bytes()
}

// artifactDir is where the screenshot goes: $AIMWAN_TEST_ARTIFACTS when set
// (CI keeps it), else a temporary folder.
func artifactDir(t *testing.T) string {
	if d := os.Getenv("AIMWAN_TEST_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

var (
	reConsole = regexp.MustCompile(`(?m)^.*:CONSOLE[^\n]*$`)
	reSVG     = regexp.MustCompile(`(?s)<svg .*?</svg>`)
)

// TestReportInChromium loads the bench fixture's report in headless Chromium:
// every chart must come out as an SVG with drawn paths, the console must stay
// silent, and the screenshot must show the charts' colours.
func TestReportInChromium(t *testing.T) {
	bin := findChromium()
	if bin == "" {
		t.Skip("chromium not found in PATH: install it (apt-get install -y chromium) to run the browser rendering test")
	}
	page := buildFixture(t, "bench")
	htmlPath := filepath.Join(t.TempDir(), "report.html")
	if err := os.WriteFile(htmlPath, render(t, page, FormatHTML), 0o644); err != nil {
		t.Fatal(err)
	}
	url := "file://" + htmlPath

	dom, logs := runChromium(t, bin, "--enable-logging=stderr", "--v=0", "--dump-dom", url)
	for _, line := range reConsole.FindAllString(string(logs), -1) {
		t.Errorf("console message: %s", line)
	}
	svgs := reSVG.FindAllString(string(dom), -1)
	if len(svgs) != len(page.Charts) {
		t.Fatalf("rendered DOM has %d svg elements, want %d (one per chart)", len(svgs), len(page.Charts))
	}
	for i, s := range svgs {
		if n := strings.Count(s, "<path"); n < 10 {
			t.Errorf("chart %s: %d paths in its svg, want a drawn chart", page.Charts[i].ID, n)
		}
	}

	shot := filepath.Join(artifactDir(t), "report-screenshot.png")
	runChromium(t, bin, "--screenshot="+shot, "--window-size=1280,2000", url)
	t.Logf("screenshot: %s", shot)
	checkScreenshot(t, shot)
}

// checkScreenshot: the image has the window's size, is not blank, and shows
// the first two series colours (the charts were painted).
func checkScreenshot(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("screenshot not written: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 2000 {
		t.Errorf("screenshot is %dx%d, want 1280x2000", b.Dx(), b.Dy())
	}
	for _, c := range palette[:2] {
		if n := countNear(img, c); n < 200 {
			t.Errorf("screenshot has %d pixels of series colour %v, want a drawn line", n, c)
		}
	}
}

// countNear counts pixels within a small distance of c.
func countNear(img image.Image, c color.RGBA) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if near8(r, c.R) && near8(g, c.G) && near8(bl, c.B) {
				n++
			}
		}
	}
	return n
}

func near8(v uint32, want uint8) bool {
	d := int(v>>8) - int(want)
	return d > -24 && d < 24
}
