package reports

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteFile renders p in format f to path, atomically: it writes a temporary
// file beside path and renames it, so a failure never leaves half a page.
func WriteFile(path string, p *Page, f Format) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := WritePage(tmp, p, f); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write report %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	return nil
}

// ReportDir builds the report of the run folder dir and writes it to out in
// format f: what `aimwan report` does, for callers such as `aimwan bench`.
func ReportDir(dir, out string, f Format, opt BuildOptions) (*Page, error) {
	run, err := LoadRun(dir)
	if err != nil {
		return nil, err
	}
	page, err := BuildPage(run, opt)
	if err != nil {
		return nil, err
	}
	if err := WriteFile(out, page, f); err != nil {
		return nil, err
	}
	return page, nil
}
