import { autocompletion, closeBrackets, closeBracketsKeymap, completionStatus } from '@codemirror/autocomplete';
import { defaultKeymap, history, historyKeymap, insertNewline } from '@codemirror/commands';
import { bracketMatching, HighlightStyle, syntaxHighlighting } from '@codemirror/language';
import { Compartment, EditorState, Prec } from '@codemirror/state';
import { EditorView, keymap, placeholder } from '@codemirror/view';
import { tags } from '@lezer/highlight';
import { PromQLExtension } from '@prometheus-io/codemirror-promql';
import { useEffect, useRef } from 'react';

import { apiFetch } from '../api';

// Colours of PromQL's syntax, from the theme's CSS variables.
const highlight = HighlightStyle.define([
  { tag: tags.keyword, color: 'var(--syn-keyword)' },
  { tag: tags.function(tags.variableName), color: 'var(--syn-function)' },
  { tag: tags.labelName, color: 'var(--syn-label)' },
  { tag: tags.string, color: 'var(--syn-string)' },
  { tag: tags.number, color: 'var(--syn-number)' },
  { tag: tags.operator, color: 'var(--syn-operator)' },
  { tag: tags.comment, color: 'var(--fg-muted)', fontStyle: 'italic' },
  { tag: tags.invalid, color: 'var(--error)' },
]);

// promql returns the PromQL language with completion of metric names, label
// names and values, asked of the API as the tenant chosen in the UI (a new
// extension, and so a new cache, per tenant), and the linter.
function promql(): PromQLExtension {
  return new PromQLExtension().activateLinter(true).setComplete({
    remote: {
      url: '',
      apiPrefix: 'api/v1',
      httpMethod: 'GET',
      fetchFn: (input: RequestInfo | URL, init?: RequestInit) => apiFetch(String(input), init),
      cache: { maxAge: 60 * 1000 },
      // The tenant's series of the last 12 hours, as Prometheus's UI asks.
      lookbackInterval: 12 * 60 * 60 * 1000,
    },
    maxMetricsMetadata: 10000,
  });
}

export interface PromQLEditorProps {
  value: string;
  onChange: (v: string) => void;
  // Enter runs the query; Shift+Enter starts a new line.
  onExecute: () => void;
  // the tenant the completion asks for; a change refreshes completion
  tenant: string;
  placeholderText?: string;
}

// PromQLEditor is a one-line-by-default CodeMirror editor for PromQL.
export function PromQLEditor({ value, onChange, onExecute, tenant, placeholderText }: PromQLEditorProps) {
  const box = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const lang = useRef(new Compartment());
  const callbacks = useRef({ onChange, onExecute });
  callbacks.current = { onChange, onExecute };

  useEffect(() => {
    const state = EditorState.create({
      doc: value,
      extensions: [
        history(),
        closeBrackets(),
        bracketMatching(),
        autocompletion(),
        syntaxHighlighting(highlight),
        placeholder(placeholderText ?? 'Expression (press Shift+Enter for newlines)'),
        EditorView.lineWrapping,
        lang.current.of(promql().asExtension()),
        Prec.highest(
          keymap.of([
            {
              key: 'Enter',
              run: (v) => {
                if (completionStatus(v.state) === 'active') {
                  return false; // Enter picks the completion
                }
                callbacks.current.onExecute();
                return true;
              },
            },
            { key: 'Shift-Enter', run: insertNewline },
          ]),
        ),
        keymap.of([...closeBracketsKeymap, ...defaultKeymap, ...historyKeymap]),
        EditorView.updateListener.of((u) => {
          if (u.docChanged) {
            callbacks.current.onChange(u.state.doc.toString());
          }
        }),
        EditorView.contentAttributes.of({ 'aria-label': 'PromQL expression', 'data-testid': 'promql-input' }),
      ],
    });
    const v = new EditorView({ state, parent: box.current! });
    view.current = v;
    return () => {
      v.destroy();
      view.current = null;
    };
    // The editor is created once; value changes from outside are applied below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  useEffect(() => {
    view.current?.dispatch({ effects: lang.current.reconfigure(promql().asExtension()) });
  }, [tenant]);

  useEffect(() => {
    const v = view.current;
    if (v && v.state.doc.toString() !== value) {
      v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: value } });
    }
  }, [value]);

  return <div className="promql-editor" ref={box} />;
}
