package pades

import (
	"fmt"
	"slices"

	"github.com/digitorus/pdf"
)

// maxChangedObjects bounds the objects one revision may touch before
// Verify stops looking at them one by one.
const maxChangedObjects = 100_000

// classify returns what revision k (k ≥ 1) changed beyond what may follow a
// signature: new signatures with their fields and appearances, the /DSS
// and its streams, document timestamps, and the catalog and page updates
// that register them. An empty result means the revision only added
// signatures or validation data.
func (v *verifier) classify(k int) (changes []string, err error) {
	if c, ok := v.classified[k]; ok {
		return c, nil
	}
	defer guard(&err, fmt.Sprintf("examining revision %d", k+1))
	prev, err := v.readers.get(k - 1)
	if err != nil {
		return nil, err
	}
	cur, err := v.readers.get(k)
	if err != nil {
		return nil, err
	}
	d := &revisionDiff{prev: prev, cur: cur, pUsed: usedSlots(prev), cUsed: usedSlots(cur)}
	touched, changes, ok := d.touched()
	if !ok {
		return []string{"rewrites more objects than can be examined"}, nil
	}
	for _, id := range v.st.Revisions[k].Freed {
		if d.usedBefore(id) {
			changes = append(changes, fmt.Sprintf("object %d freed", id))
		}
	}
	changes = append(changes, d.describe(touched)...)
	v.classified[k] = changes
	return changes, nil
}

// revisionDiff compares a revision (cur) with the one before it (prev).
type revisionDiff struct {
	prev, cur    *pdf.Reader
	pUsed, cUsed []bool // by object number: whether each revision defines it

	// Set by describe: the two catalogs, and the signature fields of cur.
	prevRoot, curRoot pdf.Value
	curRootID         uint32
	sigFields         map[uint32]bool
}

// usedSlots says, by object number, whether r's cross-reference table
// defines the object.
func usedSlots(r *pdf.Reader) []bool {
	x := r.Xref()
	used := make([]bool, len(x))
	for i := range x {
		p := x[i].Ptr()
		used[i] = i != 0 && p.GetID() == uint32(i)
	}
	return used
}

func (d *revisionDiff) usedBefore(id uint32) bool { return int(id) < len(d.pUsed) && d.pUsed[id] }

func (d *revisionDiff) usedNow(id uint32) bool { return int(id) < len(d.cUsed) && d.cUsed[id] }

// touched returns the objects cur defines anew and the objects it
// deletes; ok is false when it defines more than maxChangedObjects.
func (d *revisionDiff) touched() (touched []uint32, deleted []string, ok bool) {
	px, cx := d.prev.Xref(), d.cur.Xref()
	for i := range cx {
		if i < len(px) && cx[i] == px[i] {
			continue
		}
		if d.usedNow(uint32(i)) {
			touched = append(touched, uint32(i))
		} else if d.usedBefore(uint32(i)) {
			deleted = append(deleted, fmt.Sprintf("object %d deleted", i))
		}
		if len(touched) > maxChangedObjects {
			return nil, nil, false
		}
	}
	return touched, deleted, true
}

// describe says what the touched objects change that a signature does
// not allow.
func (d *revisionDiff) describe(touched []uint32) []string {
	allowed, sigFields := allowedObjects(d.cur)
	d.sigFields = sigFields
	d.prevRoot, d.curRoot = d.prev.Trailer().Key("Root"), d.cur.Trailer().Key("Root")
	d.curRootID = ptrID(d.curRoot)
	var changes []string
	for _, id := range touched {
		if !allowed[id] {
			changes = append(changes, d.describeObject(id)...)
		}
	}
	if ptrID(d.prevRoot) != d.curRootID {
		// A new catalog object: compare it with the old one too.
		if !slices.Contains(touched, d.curRootID) {
			changes = append(changes, compareCatalogs(d.prevRoot, d.curRoot, d.sigFields)...)
		}
	}
	return changes
}

// describeObject says how the touched object id changed.
func (d *revisionDiff) describeObject(id uint32) []string {
	p := d.cur.Xref()[id].Ptr()
	obj := d.cur.Resolve(p, p)
	typ := obj.Key("Type").Name()
	switch {
	case typ == "XRef" || typ == "ObjStm":
		return nil
	case id == d.curRootID:
		return compareCatalogs(d.prevRoot, d.curRoot, d.sigFields)
	case typ == "Page" && d.usedBefore(id):
		op := d.prev.Xref()[id].Ptr()
		old := d.prev.Resolve(op, op)
		return comparePages(id, old, obj, d.sigFields)
	}
	what := "changed"
	if !d.usedBefore(id) {
		what = "added"
	}
	if typ == "" {
		typ = obj.Key("Subtype").Name()
	}
	if typ != "" {
		return []string{fmt.Sprintf("object %d (/%s) %s", id, typ, what)}
	}
	return []string{fmt.Sprintf("object %d %s", id, what)}
}

// addsSignature reports whether revision k adds a signature that is not a
// document timestamp.
func (v *verifier) addsSignature(k int) (added bool, err error) {
	defer guard(&err, "examining signatures")
	prev, err := v.readers.get(k - 1)
	if err != nil {
		return false, err
	}
	cur, err := v.readers.get(k)
	if err != nil {
		return false, err
	}
	before, err := signatureFields(prev)
	if err != nil {
		return false, err
	}
	after, err := signatureFields(cur)
	if err != nil {
		return false, err
	}
	old := map[uint32]bool{}
	for _, f := range before {
		old[f.valueID] = true
	}
	for _, f := range after {
		if old[f.valueID] {
			continue
		}
		if _, value := f.resolve(cur); value.Key("Type").Name() != "DocTimeStamp" {
			return true, nil
		}
	}
	return false, nil
}

// allowedObjects lists the objects that may change after a signature in
// the document as read by cur: signature fields and values, their
// appearance streams with the images these draw, and the /DSS with
// everything it holds. sigFields are the signature field objects.
func allowedObjects(cur *pdf.Reader) (allowed, sigFields map[uint32]bool) {
	allowed, sigFields = map[uint32]bool{}, map[uint32]bool{}
	add := func(v pdf.Value) {
		if id := ptrID(v); id != 0 {
			allowed[id] = true
		}
	}
	fields, _ := signatureFields(cur)
	for _, f := range fields {
		field, value := f.resolve(cur)
		add(field)
		add(value)
		sigFields[ptrID(field)] = true
		ap := field.Key("AP").Key("N")
		add(ap)
		xo := ap.Key("Resources").Key("XObject")
		for _, name := range xo.Keys() {
			img := xo.Key(name)
			add(img)
			add(img.Key("SMask"))
		}
	}
	dss := cur.Trailer().Key("Root").Key("DSS")
	if dss.Kind() == pdf.Dict {
		add(dss)
		for _, key := range []string{"Certs", "CRLs", "OCSPs"} {
			arr := dss.Key(key)
			add(arr)
			for i := 0; i < arr.Len() && i < 10000; i++ {
				add(arr.Index(i))
			}
		}
		vri := dss.Key("VRI")
		add(vri)
		for n, name := range vri.Keys() {
			if n > 10000 {
				break
			}
			e := vri.Key(name)
			add(e)
			for _, key := range []string{"Cert", "CRL", "OCSP"} {
				arr := e.Key(key)
				add(arr)
				for i := 0; i < arr.Len() && i < 10000; i++ {
					add(arr.Index(i))
				}
			}
			add(e.Key("TS"))
		}
	}
	return allowed, sigFields
}

// catalogFree are catalog entries a signature or /DSS update may set.
var catalogFree = map[string]bool{"AcroForm": true, "DSS": true, "Version": true, "Extensions": true}

func compareCatalogs(old, cur pdf.Value, sigFields map[uint32]bool) []string {
	var changes []string
	for _, k := range unionKeys(old, cur) {
		if catalogFree[k] {
			continue
		}
		if old.Key(k).String() != cur.Key(k).String() {
			changes = append(changes, fmt.Sprintf("document catalog /%s changed", k))
		}
	}
	oldForm, curForm := old.Key("AcroForm"), cur.Key("AcroForm")
	oldFields, curFields := refIDs(oldForm.Key("Fields")), refIDs(curForm.Key("Fields"))
	for id := range oldFields {
		if !curFields[id] {
			changes = append(changes, fmt.Sprintf("form field %d removed", id))
		}
	}
	for id := range curFields {
		if !oldFields[id] && !sigFields[id] {
			changes = append(changes, fmt.Sprintf("form field %d added", id))
		}
	}
	for _, k := range unionKeys(oldForm, curForm) {
		if k == "Fields" || k == "SigFlags" {
			continue
		}
		if oldForm.Key(k).String() != curForm.Key(k).String() {
			changes = append(changes, fmt.Sprintf("form /%s changed", k))
		}
	}
	return changes
}

func comparePages(id uint32, old, cur pdf.Value, sigFields map[uint32]bool) []string {
	var changes []string
	for _, k := range unionKeys(old, cur) {
		if k == "Annots" {
			continue
		}
		if old.Key(k).String() != cur.Key(k).String() {
			changes = append(changes, fmt.Sprintf("page object %d: /%s changed", id, k))
		}
	}
	oldA, curA := refIDs(old.Key("Annots")), refIDs(cur.Key("Annots"))
	for a := range oldA {
		if !curA[a] {
			changes = append(changes, fmt.Sprintf("page object %d: annotation %d removed", id, a))
		}
	}
	for a := range curA {
		if !oldA[a] && !sigFields[a] {
			changes = append(changes, fmt.Sprintf("page object %d: annotation %d added", id, a))
		}
	}
	return changes
}

func unionKeys(a, b pdf.Value) []string {
	keys := append(a.Keys(), b.Keys()...)
	slices.Sort(keys)
	return slices.Compact(keys)
}

func refIDs(arr pdf.Value) map[uint32]bool {
	ids := map[uint32]bool{}
	for i := 0; i < arr.Len() && i < 100000; i++ {
		ids[ptrID(arr.Index(i))] = true
	}
	return ids
}

func ptrID(v pdf.Value) uint32 {
	p := v.GetPtr()
	return p.GetID()
}
