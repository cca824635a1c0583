// Package htmlcheck reads HTML pages in tests: it checks that a page is
// well formed (every element the page opens it also closes, in order)
// and finds elements and their text. It serves the status page's tests.
package htmlcheck

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/net/html"
)

// void elements have no end tag.
var void = map[string]bool{"area": true, "base": true, "br": true, "col": true, "embed": true, "hr": true,
	"img": true, "input": true, "link": true, "meta": true, "source": true, "track": true, "wbr": true}

// Parse checks that page is well formed and returns its tree.
func Parse(page string) (*html.Node, error) {
	if err := wellFormed(page); err != nil {
		return nil, err
	}
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(strings.ToLower(strings.TrimSpace(page)), "<!doctype html>") {
		return nil, errors.New("page does not start with <!DOCTYPE html>")
	}
	return doc, nil
}

// wellFormed is stricter than HTML, which lets some end tags be left out:
// it wants every non-void element closed, in order, and nothing else
// closed.
func wellFormed(page string) error {
	z := html.NewTokenizer(strings.NewReader(page))
	var open []string
	for {
		switch z.Next() {
		case html.ErrorToken:
			if z.Err() != io.EOF {
				return z.Err()
			}
			if len(open) > 0 {
				return fmt.Errorf("unclosed elements at end of page: %v", open)
			}
			return nil
		case html.StartTagToken:
			name, _ := z.TagName()
			if !void[string(name)] {
				open = append(open, string(name))
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			if len(open) == 0 || open[len(open)-1] != string(name) {
				return fmt.Errorf("line with </%s> closes nothing open (open: %v)", name, open)
			}
			open = open[:len(open)-1]
		}
	}
}

// ByID returns the element with the given id, or nil.
func ByID(n *html.Node, id string) *html.Node {
	if n.Type == html.ElementNode && Attr(n, "id") == id {
		return n
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if f := ByID(c, id); f != nil {
			return f
		}
	}
	return nil
}

// Attr returns n's attribute key, or "".
func Attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// Text is the text inside n with runs of white space made one space; ""
// for a nil n.
func Text(n *html.Node) string {
	if n == nil {
		return ""
	}
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
			b.WriteByte(' ')
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

// Rows returns the text of each cell of each data row (rows of td cells)
// of a table.
func Rows(table *html.Node) [][]string {
	var rows [][]string
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "tr" {
			var cells []string
			for c := n.FirstChild; c != nil; c = c.NextSibling {
				if c.Type == html.ElementNode && c.Data == "td" {
					cells = append(cells, Text(c))
				}
			}
			if cells != nil {
				rows = append(rows, cells)
			}
			return
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(table)
	return rows
}
