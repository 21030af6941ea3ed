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
	px, cx := prev.Xref(), cur.Xref()
	pUsed, cUsed := make([]bool, len(px)), make([]bool, len(cx))
	for i := range px {
		p := px[i].Ptr()
		pUsed[i] = i != 0 && p.GetID() == uint32(i)
	}
	for i := range cx {
		p := cx[i].Ptr()
		cUsed[i] = i != 0 && p.GetID() == uint32(i)
	}
	used := func(u []bool, i int) bool { return i < len(u) && u[i] }

	var touched []uint32
	for i := range cx {
		if i < len(px) && cx[i] == px[i] {
			continue
		}
		if used(cUsed, i) {
			touched = append(touched, uint32(i))
		} else if used(pUsed, i) {
			changes = append(changes, fmt.Sprintf("object %d deleted", i))
		}
		if len(touched) > maxChangedObjects {
			return []string{"rewrites more objects than can be examined"}, nil
		}
	}
	for _, id := range v.st.Revisions[k].Freed {
		if used(pUsed, int(id)) {
			changes = append(changes, fmt.Sprintf("object %d freed", id))
		}
	}

	allowed, sigFields := allowedObjects(cur)
	prevRoot, curRoot := prev.Trailer().Key("Root"), cur.Trailer().Key("Root")
	curRootID := ptrID(curRoot)
	for _, id := range touched {
		if allowed[id] {
			continue
		}
		p := cx[id].Ptr()
		obj := cur.Resolve(p, p)
		typ := obj.Key("Type").Name()
		switch {
		case typ == "XRef" || typ == "ObjStm":
			continue
		case id == curRootID:
			changes = append(changes, compareCatalogs(prevRoot, curRoot, sigFields)...)
		case typ == "Page" && used(pUsed, int(id)):
			op := px[id].Ptr()
			old := prev.Resolve(op, op)
			changes = append(changes, comparePages(id, old, obj, sigFields)...)
		default:
			what := "changed"
			if !used(pUsed, int(id)) {
				what = "added"
			}
			if typ == "" {
				typ = obj.Key("Subtype").Name()
			}
			if typ != "" {
				changes = append(changes, fmt.Sprintf("object %d (/%s) %s", id, typ, what))
			} else {
				changes = append(changes, fmt.Sprintf("object %d %s", id, what))
			}
		}
	}
	if ptrID(prevRoot) != curRootID {
		// A new catalog object: compare it with the old one too.
		if !slices.Contains(touched, curRootID) {
			changes = append(changes, compareCatalogs(prevRoot, curRoot, sigFields)...)
		}
	}
	v.classified[k] = changes
	return changes, nil
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
