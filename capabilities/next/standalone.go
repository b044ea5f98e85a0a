package next

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/wattd/wattd/capabilities"
)

var _ capabilities.AfterBuilder = (*Capability)(nil)

// AfterBuild completes a standalone build: Next.js writes server.js and its
// traced node_modules to .next/standalone but leaves out .next/static and
// public, which the standalone server serves from beside itself. Copying
// them here makes `wattd build && wattd start` work with no manual step.
func (*Capability) AfterBuild(app capabilities.App) error {
	b, err := FindBuild(app.Dir)
	if err != nil || b == nil || b.Output != "standalone" {
		return err
	}
	dir := filepath.Join(b.Dir, "standalone", b.RelativeAppDir)
	if _, err := os.Stat(filepath.Join(dir, "server.js")); err != nil {
		return fmt.Errorf("next: app %q: standalone build has no server.js: %w", app.ID, err)
	}
	dist, err := filepath.Rel(app.Dir, b.Dir)
	if err != nil {
		return err
	}
	for _, p := range [][2]string{
		{filepath.Join(b.Dir, "static"), filepath.Join(dir, dist, "static")},
		{filepath.Join(app.Dir, "public"), filepath.Join(dir, "public")},
	} {
		if _, err := os.Stat(p[0]); os.IsNotExist(err) {
			continue
		}
		// A previous build's copy may hold stale chunks: replace it.
		if err := os.RemoveAll(p[1]); err != nil {
			return fmt.Errorf("next: app %q: %w", app.ID, err)
		}
		if err := copyTree(p[0], p[1]); err != nil {
			return fmt.Errorf("next: app %q: copy %s into the standalone build: %w", app.ID, p[0], err)
		}
	}
	return nil
}

// copyTree copies regular files, folders and symlinks from src to dst.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case d.Type().IsRegular():
			return copyFile(p, to)
		}
		return nil // sockets and devices have no place in a build
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
