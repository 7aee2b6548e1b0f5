package pipeline

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// writeContext writes the build context dir as a tar stream to w,
// leaving out what dir/.dockerignore excludes, as `docker build` does
// (patterns are the engine's own, through moby/patternmatcher). The
// Dockerfile and .dockerignore are always sent: the builder needs them.
func writeContext(w io.Writer, dir, dockerfile string) error {
	var patterns []string
	if f, err := os.Open(filepath.Join(dir, ".dockerignore")); err == nil {
		patterns, err = ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("read %s: %w", filepath.Join(dir, ".dockerignore"), err)
		}
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(dir, ".dockerignore"), err)
	}
	keep := map[string]bool{filepath.ToSlash(dockerfile): true, ".dockerignore": true}
	tw := tar.NewWriter(w)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if !keep[rel] {
			skip, err := pm.MatchesOrParentMatches(rel)
			if err != nil {
				return err
			}
			if skip {
				// A directory may still hold files an exclusion (!pattern)
				// brings back; only then must it be walked.
				if d.IsDir() && !pm.Exclusions() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		return addFile(tw, path, rel, d)
	})
	if err != nil {
		return fmt.Errorf("build context %s: %w", dir, err)
	}
	return tw.Close()
}

func addFile(tw *tar.Writer, path, rel string, d fs.DirEntry) error {
	info, err := d.Info()
	if err != nil {
		return err
	}
	link := ""
	if info.Mode()&fs.ModeSymlink != 0 {
		if link, err = os.Readlink(path); err != nil {
			return err
		}
	}
	hdr, err := tar.FileInfoHeader(info, link)
	if err != nil {
		return err
	}
	hdr.Name = rel
	if info.IsDir() {
		hdr.Name += "/"
	}
	// Owners and names of the build machine's users mean nothing in an image.
	hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(tw, f)
	return err
}

// checkDockerfile makes sure the Dockerfile exists inside the context and
// returns its path relative to it.
func checkDockerfile(dir, dockerfile string) (string, error) {
	if dockerfile == "" {
		dockerfile = "Dockerfile"
	}
	abs := dockerfile
	if !filepath.IsAbs(abs) {
		abs = filepath.Join(dir, dockerfile)
	}
	rel, err := filepath.Rel(dir, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", invalidf("Dockerfile %s is outside the build context %s: move it into the context or build from a directory that holds it", dockerfile, dir)
	}
	st, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", invalidf("no Dockerfile at %s: write one, or name it with -f", abs)
	case err != nil:
		return "", err
	case st.IsDir():
		return "", invalidf("%s is a directory, not a Dockerfile", abs)
	}
	return rel, nil
}
