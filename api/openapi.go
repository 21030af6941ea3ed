package api

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Op documents one route for the OpenAPI description. Every route Chamber
// serves is registered with one (see API.route); a test fails if a route
// is served without appearing in /api/v1/openapi.json.
type Op struct {
	Summary string
	Tags    []string
	// Auth says which credentials the route takes: "" (none), "bearer"
	// (an API token, an invitation token, or the console's cookie),
	// "cookie" (the console's cookie only).
	Auth string
	// Request is a value of the JSON request body's type; nil for none.
	Request any
	// RawBody names the content types of a non-JSON request body.
	RawBody []string
	// Response is a value of the success response's JSON type; nil for
	// none. RawResponse names a non-JSON response's content type.
	Response    any
	RawResponse string
	// Status is the success status, 200 if zero.
	Status int
	// Query lists query parameters.
	Query []Param
	// Errors lists the error statuses the route returns.
	Errors []int
	// Hidden routes (web pages) are served but not part of the API
	// description; they are listed in the document's x-pages instead.
	Hidden bool
}

// Param is a query parameter.
type Param struct {
	Name        string
	Description string
	Required    bool
	Type        string // "string", "integer", "boolean"
}

type documentedRoute struct {
	method, path string
	op           Op
}

// OpenAPI builds the OpenAPI 3.1 description of every documented route.
func (a *API) OpenAPI() map[string]any {
	gen := &schemaGen{components: map[string]any{}}
	paths := map[string]map[string]any{}
	var pages []string
	for _, r := range a.documented {
		if r.op.Hidden {
			pages = append(pages, strings.TrimSpace(r.method+" "+r.path))
			continue
		}
		item := paths[r.path]
		if item == nil {
			item = map[string]any{}
			paths[r.path] = item
		}
		item[strings.ToLower(r.method)] = gen.operation(r.method, r.path, r.op)
	}
	sort.Strings(pages)
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":       "Chamber API",
			"version":     "1",
			"description": "Virtual courtrooms and remote notarisation. Errors are {\"error\":{\"code\",\"message\"}}.",
		},
		"paths": paths,
		"components": map[string]any{
			"schemas": gen.components,
			"securitySchemes": map[string]any{
				"bearer": map[string]any{"type": "http", "scheme": "bearer",
					"description": "A staff member's API token (cha_…, scoped; never from a browser page) or an invitation token (chi_…)."},
				"cookie": map[string]any{"type": "apiKey", "in": "cookie", "name": "chamber_session",
					"description": "The console's sign-in (__Host-chamber_session over https). State-changing requests also carry the X-Chamber-CSRF header."},
			},
		},
		"x-pages": pages,
	}
}

func (a *API) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	WriteJSON(w, http.StatusOK, a.OpenAPI())
}

var pathParam = regexp.MustCompile(`\{([a-zA-Z_]+)\.*\$?\}`)

func (g *schemaGen) operation(method, path string, op Op) map[string]any {
	o := map[string]any{
		"summary":     op.Summary,
		"operationId": operationID(method, path),
	}
	if len(op.Tags) > 0 {
		o["tags"] = op.Tags
	}
	var params []any
	for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
		params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
	}
	for _, q := range op.Query {
		t := q.Type
		if t == "" {
			t = "string"
		}
		params = append(params, map[string]any{"name": q.Name, "in": "query", "required": q.Required,
			"description": q.Description, "schema": map[string]any{"type": t}})
	}
	if len(params) > 0 {
		o["parameters"] = params
	}
	switch op.Auth {
	case "bearer":
		o["security"] = []any{map[string]any{"bearer": []string{}}, map[string]any{"cookie": []string{}}}
	case "cookie":
		o["security"] = []any{map[string]any{"cookie": []string{}}}
	}
	switch {
	case op.Request != nil:
		o["requestBody"] = map[string]any{"required": true, "content": map[string]any{
			"application/json": map[string]any{"schema": g.schema(reflect.TypeOf(op.Request))}}}
	case len(op.RawBody) > 0:
		content := map[string]any{}
		for _, ct := range op.RawBody {
			content[ct] = map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}
		}
		o["requestBody"] = map[string]any{"required": true, "content": content}
	}
	status := op.Status
	if status == 0 {
		status = http.StatusOK
	}
	ok := map[string]any{"description": http.StatusText(status)}
	switch {
	case op.Response != nil:
		ok["content"] = map[string]any{"application/json": map[string]any{"schema": g.schema(reflect.TypeOf(op.Response))}}
	case op.RawResponse != "":
		ok["content"] = map[string]any{op.RawResponse: map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}}
	}
	responses := map[string]any{strconv.Itoa(status): ok}
	errSchema := g.schema(reflect.TypeOf(ErrorBody{}))
	for _, code := range op.Errors {
		responses[strconv.Itoa(code)] = map[string]any{
			"description": http.StatusText(code),
			"content":     map[string]any{"application/json": map[string]any{"schema": errSchema}},
		}
	}
	o["responses"] = responses
	return o
}

func operationID(method, path string) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(method))
	for _, seg := range strings.Split(path, "/") {
		seg = strings.Trim(seg, "{}.$")
		if seg == "" || seg == "api" || seg == "v1" {
			continue
		}
		for _, part := range strings.FieldsFunc(seg, func(r rune) bool { return r == '-' || r == '_' }) {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

// schemaGen turns Go types into JSON Schema (2020-12, as OpenAPI 3.1 uses),
// naming structs as components so each appears once.
type schemaGen struct {
	components map[string]any
}

var (
	timeType    = reflect.TypeOf(time.Time{})
	uuidType    = reflect.TypeOf(uuid.UUID{})
	rawJSONType = reflect.TypeOf(json.RawMessage{})
)

func (g *schemaGen) schema(t reflect.Type) any {
	switch t {
	case timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case uuidType:
		return map[string]any{"type": "string", "format": "uuid"}
	case rawJSONType:
		return map[string]any{}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return map[string]any{"oneOf": []any{g.schema(t.Elem()), map[string]any{"type": "null"}}}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "contentEncoding": "base64"}
		}
		return map[string]any{"type": "array", "items": g.schema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.schema(t.Elem())}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		name := t.Name()
		if name == "" {
			return g.structSchema(t)
		}
		name = componentName(t)
		if _, done := g.components[name]; !done {
			g.components[name] = map[string]any{} // breaks recursion
			g.components[name] = g.structSchema(t)
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	return map[string]any{}
}

func componentName(t reflect.Type) string {
	pkg := t.PkgPath()
	if i := strings.LastIndex(pkg, "/"); i >= 0 {
		pkg = pkg[i+1:]
	}
	if pkg == "api" || pkg == "" {
		return t.Name()
	}
	return strings.ToUpper(pkg[:1]) + pkg[1:] + t.Name()
}

func (g *schemaGen) structSchema(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			if sub, ok := g.structSchema(f.Type)["properties"].(map[string]any); ok {
				for k, v := range sub {
					props[k] = v
				}
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		props[name] = g.schema(f.Type)
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") && f.Type.Kind() != reflect.Pointer {
			required = append(required, name)
		}
	}
	s := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		sort.Strings(required)
		s["required"] = required
	}
	return s
}
