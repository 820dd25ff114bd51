package mutate

import (
	"reflect"
	"strings"
	"testing"
)

// want is an expected mutant: its ID, Original and Mutated.
type want struct {
	id, orig, mut string
}

func got(ms []Mutant) []want {
	var out []want
	for _, m := range ms {
		out = append(out, want{m.ID, m.Original, m.Mutated})
	}
	return out
}

const testFile = "fs/test/t.c"

func TestOperators(t *testing.T) {
	cases := []struct {
		name string
		ops  []string
		hunk string // starts at line 10
		want []want
	}{{
		name: "delete-statement spares declarations and jumps, takes multi-line statements",
		ops:  []string{"delete-statement"},
		hunk: `
 int foo(int a)
 {
+    struct bar *b;
+    int id = -ENOMEM;
+    size_t n = 0;
+    do_thing(a);
+    b->x = compute(a,
+                   a + 1);
+    *b->p = n;
+    if (a)
+        goto out;
+    return id;
 }
 
 int other(void)`,
		want: []want{
			{testFile + ":15:delete-statement", "    do_thing(a);", ""},
			{testFile + ":16:delete-statement", "    b->x = compute(a,\n                   a + 1);", ""},
			{testFile + ":18:delete-statement", "    *b->p = n;", ""},
		},
	}, {
		name: "comments, strings and preprocessor lines are not code",
		hunk: `
 void bar(int a, int b)
 {
+    pr_info("a == b && c < d"); /* x == y */
+    // if (a == b) in a comment
+    /* a multi-line
+     * comment with a == b; and foo();
+     */
+    if (a == b) /* note */
+        baz();
+#if A == B
+    qux();
+#endif
+    x = a == b; /* a comment that
+                   goes on */
 }
 
 int other(void)`,
		want: []want{
			{testFile + ":12:delete-statement", `    pr_info("a == b && c < d"); /* x == y */`, ""},
			{testFile + ":17:negate-condition", "    if (a == b) /* note */", "    if (!(a == b))"},
			{testFile + ":17:swap-eq", "    if (a == b) /* note */", "    if (a != b)"},
			{testFile + ":18:delete-statement", "        baz();", "        ;"},
			{testFile + ":20:delete-statement", "    qux();", ""},
			{testFile + ":22:swap-eq", "    x = a == b; /* a comment that", "    x = a != b; /* a comment that"},
		},
	}, {
		name: "swap-rel: each relation once, not -> or <<",
		ops:  []string{"swap-rel"},
		hunk: `
 void bar(int a, int b)
 {
+    if (a < b && c >= d && p->x > 1 && (e << 2) > 0)
+        baz();
 }
 
 int other(void)`,
		want: []want{
			{testFile + ":12:swap-rel", "    if (a < b && c >= d && p->x > 1 && (e << 2) > 0)", "    if (a <= b && c >= d && p->x > 1 && (e << 2) > 0)"},
			{testFile + ":12:swap-rel#2", "    if (a < b && c >= d && p->x > 1 && (e << 2) > 0)", "    if (a < b && c > d && p->x > 1 && (e << 2) > 0)"},
			{testFile + ":12:swap-rel#3", "    if (a < b && c >= d && p->x > 1 && (e << 2) > 0)", "    if (a < b && c >= d && p->x >= 1 && (e << 2) > 0)"},
			{testFile + ":12:swap-rel#4", "    if (a < b && c >= d && p->x > 1 && (e << 2) > 0)", "    if (a < b && c >= d && p->x > 1 && (e << 2) >= 0)"},
		},
	}, {
		name: "swap-logic and swap-eq",
		ops:  []string{"swap-eq", "swap-logic"},
		hunk: `
 void bar(int a, int b)
 {
+    x = a == 1 || b != 2 && c;
 }
 
 int other(void)`,
		want: []want{
			{testFile + ":12:swap-eq", "    x = a == 1 || b != 2 && c;", "    x = a != 1 || b != 2 && c;"},
			{testFile + ":12:swap-eq#2", "    x = a == 1 || b != 2 && c;", "    x = a == 1 || b == 2 && c;"},
			{testFile + ":12:swap-logic", "    x = a == 1 || b != 2 && c;", "    x = a == 1 && b != 2 && c;"},
			{testFile + ":12:swap-logic#2", "    x = a == 1 || b != 2 && c;", "    x = a == 1 || b != 2 || c;"},
		},
	}, {
		name: "negate-condition: if, else if, while, multi-line",
		ops:  []string{"negate-condition"},
		hunk: `
 void bar(int a, int b)
 {
+    while (n < 10)
+        n++;
+    if (a)
+        x = 1;
+    else if (b &&
+             c)
+        x = 2;
 }
 
 int other(void)`,
		want: []want{
			{testFile + ":12:negate-condition", "    while (n < 10)", "    while (!(n < 10))"},
			{testFile + ":14:negate-condition", "    if (a)", "    if (!(a))"},
			{testFile + ":16:negate-condition", "    else if (b &&\n             c)", "    else if (!(b &&\n             c))"},
		},
	}, {
		name: "return-value",
		ops:  []string{"return-value"},
		hunk: `
 int bar(int a, int b)
 {
+    if (x)
+        return -EINVAL;
+    if (y)
+        return -EPERM;
+    if (z)
+        return 1;
+    if (w)
+        return ret;
+    if (v)
+        return PTR_ERR(p);
+    return 0;
 }
 
 int other(void)`,
		want: []want{
			{testFile + ":13:return-value", "        return -EINVAL;", "        return 0;"},
			{testFile + ":13:return-value#2", "        return -EINVAL;", "        return -EPERM;"},
			{testFile + ":15:return-value", "        return -EPERM;", "        return 0;"},
			{testFile + ":15:return-value#2", "        return -EPERM;", "        return -EINVAL;"},
			{testFile + ":17:return-value", "        return 1;", "        return 0;"},
			{testFile + ":22:return-value", "    return 0;", "    return -EINVAL;"},
		},
	}, {
		name: "callback-stop replaces the callback's return-value and dedupe keeps the first operator",
		hunk: `
 int before(void)
 {
 }
+
+static int cb(int id, void *p, void *data)
+{
+    if (!p)
+        return -ENOENT;
+    thing_put(p);
+    return 0;
+}
+
+int walk(struct x *x)
+{
+    idr_for_each(&x->map, cb, x);
+    return 0;
+}
 
 int other(void)`,
		want: []want{
			{testFile + ":16:negate-condition", "    if (!p)", "    if (!(!p))"},
			{testFile + ":17:callback-stop", "        return -ENOENT;", "        return 0;"},
			{testFile + ":17:return-value", "        return -ENOENT;", "        return -EINVAL;"},
			{testFile + ":18:drop-put", "    thing_put(p);", ""},
			{testFile + ":19:callback-stop", "    return 0;", "    return 1;"},
			{testFile + ":24:delete-statement", "    idr_for_each(&x->map, cb, x);", ""},
			{testFile + ":25:return-value", "    return 0;", "    return -EINVAL;"},
		},
	}, {
		name: "drop-capable, drop-lock, drop-rcu, drop-get",
		ops:  []string{"drop-capable", "drop-lock", "drop-rcu", "drop-get"},
		hunk: `
 int f(struct c *fc, int id)
 {
+    struct fb *fb;
+
+    if (!ns_capable(fc->user_ns, CAP_SYS_ADMIN) || !capable(CAP_SYS_ADMIN))
+        return -EPERM;
+    spin_lock(&fc->lock);
+    fb = fuse_backing_get(idr_find(&fc->map, id));
+    spin_unlock(&fc->lock);
+    rcu_read_lock();
+    get_file(fb->file);
+    rcu_read_unlock();
+    mutex_lock(&fc->m);
+    spin_lock(&a->l);
+    foo();
+    spin_unlock(&b->l);
+    x = fc->ops.capable(1);
+    fuse_get_dev(x);
 }
 
 int other(void)`,
		want: []want{
			{testFile + ":14:drop-capable", "    if (!ns_capable(fc->user_ns, CAP_SYS_ADMIN) || !capable(CAP_SYS_ADMIN))", "    if (!true || !capable(CAP_SYS_ADMIN))"},
			{testFile + ":14:drop-capable#2", "    if (!ns_capable(fc->user_ns, CAP_SYS_ADMIN) || !capable(CAP_SYS_ADMIN))", "    if (!ns_capable(fc->user_ns, CAP_SYS_ADMIN) || !true)"},
			{testFile + ":16:drop-lock", "    spin_lock(&fc->lock);\n    spin_unlock(&fc->lock);", ""},
			{testFile + ":17:drop-get", "    fb = fuse_backing_get(idr_find(&fc->map, id));", "    fb = idr_find(&fc->map, id);"},
			{testFile + ":19:drop-rcu", "    rcu_read_lock();\n    rcu_read_unlock();", ""},
			{testFile + ":20:drop-get", "    get_file(fb->file);", ""},
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := seriesOf(t, mailText("test", fileText(testFile, hunkText(10, 10, c.hunk))))
			ms, err := Generate(s, c.ops)
			if err != nil {
				t.Fatal(err)
			}
			if g := got(ms); !reflect.DeepEqual(g, c.want) {
				t.Errorf("mutants:\n%s\nwant:\n%s", dump(g), dump(c.want))
			}
			// Every mutant applies on top of the series, at its line.
			r := applySeries(t, s, baseFiles(t, s))
			checkMutantsApply(t, r, ms, func(m Mutant) int { return m.Line })
		})
	}
}

func dump(ws []want) string {
	var b strings.Builder
	for _, w := range ws {
		b.WriteString("  " + w.id + " | " + strings.ReplaceAll(w.orig, "\n", `\n`) + " -> " + strings.ReplaceAll(w.mut, "\n", `\n`) + "\n")
	}
	return b.String()
}

func TestHeadersAreNotMutated(t *testing.T) {
	s := seriesOf(t, mailText("header", fileText("include/t.h", hunkText(10, 10, `
 struct a;
+static inline int f(int a)
+{
+    if (a == 1)
+        return -EINVAL;
+    foo();
+    return 0;
+}
 
 int other(void);`))))
	ms, err := Generate(s, nil)
	if err != nil || len(ms) != 0 {
		t.Fatalf("Generate = %v, %v; want no mutants of a header", got(ms), err)
	}
}

func TestUnknownOperator(t *testing.T) {
	s := seriesOf(t, mailText("t", fileText(testFile, hunkText(10, 10, " int f(void)\n {\n+    foo();\n }\n"))))
	_, err := Generate(s, []string{"swap-eq", "frobnicate"})
	if err == nil || !strings.Contains(err.Error(), `"frobnicate"`) || !strings.Contains(err.Error(), strings.Join(Operators, ", ")) {
		t.Fatalf("err = %v; want it to name frobnicate and list the operators", err)
	}
}

// A later patch that changes the same file: lines it removes are not
// mutated, Line is as the adding patch numbers it, and the diff applies on
// top of both patches.
func TestLaterPatchMovesAndRemovesLines(t *testing.T) {
	base := []string{"/* 1 */", "/* 2 */", "int f(int a)", "{", "    one();", "    two();", "    three();", "}", "/* 9 */", "/* 10 */",
		"/* 11 */", "/* 12 */", "/* 13 */", "int g(int a)", "{", "    four();", "    five();", "    six();", "}", "/* 20 */", "/* 21 */", "/* 22 */"}
	p1 := mailText("one", fileText(testFile,
		hunkText(14, 14, `
 int g(int a)
 {
     four();
+    added_a();
+    if (a == 1)
+        added_b();
     five();
     six();
 }`)))
	p2 := mailText("two", fileText(testFile,
		hunkText(5, 5, `
     one();
     two();
+    new_one();
+    new_two();
     three();
 }
 /* 9 */`),
		hunkText(15, 17, `
 {
     four();
     added_a();
-    if (a == 1)
-        added_b();
+    added_c();
     five();
     six();`)))
	s := seriesOf(t, p1, p2)
	ms, err := Generate(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := []want{
		{testFile + ":17:delete-statement", "    added_a();", ""},
		{testFile + ":7:delete-statement", "    new_one();", ""},
		{testFile + ":8:delete-statement", "    new_two();", ""},
		{testFile + ":20:delete-statement", "    added_c();", ""},
	}
	if g := got(ms); !reflect.DeepEqual(g, w) {
		t.Fatalf("mutants:\n%s\nwant:\n%s", dump(g), dump(w))
	}
	if !strings.Contains(string(ms[0].Diff.Data), "@@ -16,7 +16,6 @@") {
		t.Errorf("the diff of %s is not numbered as the series leaves the file:\n%s", ms[0].ID, ms[0].Diff.Data)
	}
	r := applySeries(t, s, map[string][]string{testFile: base})
	checkMutantsApply(t, r, ms, func(m Mutant) int {
		if m.Patch == s.Patches[0].Name {
			return m.Line + 2 // patch 2 adds two lines above
		}
		return m.Line
	})
}

func TestIDsAreStable(t *testing.T) {
	s := seriesOf(t, mailText("t", fileText(testFile, hunkText(10, 10, " int f(void)\n {\n+    if (a == b && c == d)\n+        foo();\n }\n"))))
	a, err := Generate(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Generate(s, nil)
	only, _ := Generate(s, []string{"swap-eq"})
	if !reflect.DeepEqual(got(a), got(b)) {
		t.Fatal("two runs differ")
	}
	var eqs []want
	for _, m := range got(a) {
		if strings.Contains(m.id, ":swap-eq") {
			eqs = append(eqs, m)
		}
	}
	if !reflect.DeepEqual(got(only), eqs) || len(eqs) != 2 {
		t.Errorf("selecting swap-eq gives %v, want %v", got(only), eqs)
	}
	for _, m := range a {
		if m.Diff.Name != PatchName(m.ID) || strings.ContainsAny(m.Diff.Name, "/:#") {
			t.Errorf("patch name %q of %s", m.Diff.Name, m.ID)
		}
		if m.Diff.Subject != m.ID {
			t.Errorf("patch subject %q, want %q", m.Diff.Subject, m.ID)
		}
	}
}
