package mutate

import (
	"reflect"
	"strings"
	"testing"

	"fusevm/kernel"
)

const seriesDir = "../patches/fuse-passthrough-recovery/7.3/"

func loadMutants(t *testing.T, version string) (*kernel.Series, []Mutant) {
	t.Helper()
	s, err := kernel.LoadSeries(seriesDir + version)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := Generate(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, ms
}

func TestRealSeries(t *testing.T) {
	type expect struct {
		id, orig, mut string
	}
	cases := map[string][]expect{
		"v2": {
			{"fs/fuse/backing.c:198:drop-capable", "\tif (!fc->passthrough || !capable(CAP_SYS_ADMIN))", "\tif (!fc->passthrough || !true)"},
			{"fs/fuse/backing.c:182:callback-stop", "\treturn 0;", "\treturn 1;"}, // in fuse_backing_close_one
			{"fs/fuse/backing.c:180:drop-put", "\tfuse_backing_put(fb);", ""},
			{"fs/fuse/backing.c:195:delete-statement", "\tpr_debug(\"%s\\n\", __func__);", ""},
			{"fs/fuse/backing.c:201:delete-statement", "\tidr_for_each(&fc->backing_files_map, fuse_backing_close_one, fc);", ""},
			{"fs/fuse/iomode.c:99:swap-eq", "\t    file_inode(oldfb->file) != file_inode(fb->file)) {", "\t    file_inode(oldfb->file) == file_inode(fb->file)) {"},
			{"fs/fuse/iomode.c:98:negate-condition", "\tif (fb && oldfb && oldfb != fb &&\n\t    file_inode(oldfb->file) != file_inode(fb->file)) {",
				"\tif (!(fb && oldfb && oldfb != fb &&\n\t    file_inode(oldfb->file) != file_inode(fb->file))) {"},
			{"fs/fuse/dev.c:2372:return-value", "\t\treturn -EOPNOTSUPP;", "\t\treturn 0;"},
		},
		"v3": {
			{"fs/fuse/backing.c:242:drop-capable", "\tif (!fc->passthrough || !capable(CAP_SYS_ADMIN))", "\tif (!fc->passthrough || !true)"},
			{"fs/fuse/backing.c:219:callback-stop", "\treturn 0;", "\treturn 1;"},              // in fuse_backing_id_put
			{"fs/fuse/backing.c:271:drop-rcu", "\trcu_read_lock();\n\trcu_read_unlock();", ""}, // in fuse_backing_lookup
			{"fs/fuse/backing.c:249:drop-lock", "\tspin_lock(&fc->lock);\n\tspin_unlock(&fc->lock);", ""},
			{"fs/fuse/backing.c:274:drop-get", "\t\tfb = fuse_backing_get(idr_find(map, backing_id));", "\t\tfb = idr_find(map, backing_id);"},
			{"fs/fuse/backing.c:274:delete-statement", "\t\tfb = fuse_backing_get(idr_find(map, backing_id));", "\t\t;"},
			{"fs/fuse/iomode.c:99:swap-eq", "\t    file_inode(oldfb->file) != file_inode(fb->file)) {", "\t    file_inode(oldfb->file) == file_inode(fb->file)) {"},
		},
	}
	for _, v := range []string{"v2", "v3"} {
		t.Run(v, func(t *testing.T) {
			s, ms := loadMutants(t, v)
			byID := map[string]Mutant{}
			for _, m := range ms {
				if _, dup := byID[m.ID]; dup {
					t.Errorf("duplicate ID %s", m.ID)
				}
				byID[m.ID] = m
				if !strings.HasSuffix(m.File, ".c") {
					t.Errorf("mutant %s of a header", m.ID)
				}
			}
			for _, e := range cases[v] {
				m, ok := byID[e.id]
				if !ok {
					t.Errorf("no mutant %s", e.id)
					continue
				}
				if m.Original != e.orig || m.Mutated != e.mut {
					t.Errorf("%s: %q -> %q, want %q -> %q", e.id, m.Original, m.Mutated, e.orig, e.mut)
				}
			}
			// A callback's return 0 has no return-value mutant, a put no
			// delete-statement one.
			for _, id := range []string{"fs/fuse/backing.c:182:return-value", "fs/fuse/backing.c:180:delete-statement"} {
				if _, ok := byID[id]; ok && v == "v2" {
					t.Errorf("mutant %s should have been deduped", id)
				}
			}
			_, again := loadMutants(t, v)
			if !reflect.DeepEqual(got(ms), got(again)) {
				t.Error("IDs are not deterministic")
			}
			// Each file is touched by one patch of these series, so the
			// series leaves every mutated line where its patch put it.
			r := applySeries(t, s, baseFiles(t, s))
			checkMutantsApply(t, r, ms, func(m Mutant) int { return m.Line })
		})
	}
}
