#!/usr/bin/env python3
"""Regenerates the Jinja2 reference files of circuitscope's chat-template tests.

    python3 tests/data/chat/gen_reference.py        (from the repository root; needs Jinja2)

Writes tests/data/chat/engine_reference.jsonl and tests/data/chat/families_reference.jsonl.
The tests only read those files; they never run Python.

The environment is the one Hugging Face transformers builds in _compile_jinja_template:
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]) with
filters["tojson"] replaced by json.dumps(x, ensure_ascii=False, indent=None, separators=None,
sort_keys=False) and globals raise_exception (raises TemplateError) and strftime_now. HF's
AssistantTracker extension (the {% generation %} tag) is reproduced without its offset bookkeeping,
which does not change the rendered text. The render context is what
transformers passes: messages, tools (None unless given), documents=None, add_generation_prompt, the
special tokens that are set, and enable_thinking only when given.
"""
import json
import os
import sys
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(format):
    return datetime.now().strftime(format)


class AssistantTracker(jinja2.ext.Extension):
    """HF's {% generation %} tag, minus the offset bookkeeping: renders its body unchanged."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_generation_support"), [], [], body).set_lineno(lineno)

    def _generation_support(self, caller):
        return caller()


def make_env():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[AssistantTracker, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


ENV = make_env()


def render_row(template, context):
    row = {}
    try:
        row["text"] = ENV.from_string(template).render(**context)
    except jinja2.exceptions.TemplateSyntaxError as e:
        row["error"] = type(e).__name__
        row["message"] = e.message
        row["lineno"] = e.lineno
    except Exception as e:  # runtime errors: class and message
        row["error"] = type(e).__name__
        row["message"] = str(e)
    return row


# ---- engine cases: (name, template, context) ------------------------------------------------------
# Each exercises one feature; expected output is whatever Jinja2 renders.
MSGS = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi <b>&</b>"},
    {"role": "assistant", "content": "Hello!", "tool_calls": [{"function": {"name": "f", "arguments": {"b": 1, "a": [1.5, None, True]}}}]},
]
ENGINE = [
    # whitespace control, trim_blocks, lstrip_blocks
    ("ws_trim_lstrip", "a\n  {% if true %}\n  x\n  {% endif %}\nb\n", {}),
    ("ws_inline_block_not_stripped", "a  {% if true %}\n  x\n  {% endif %}  \nb", {}),
    ("ws_plus_disables_lstrip", "a\n  {% if true %}  \n  x\n  {%+ endif %}\nb", {}),
    ("ws_plus_disables_trim", "a\n{% if true +%}\nx\n{% endif %}\nb", {}),
    ("ws_minus_both", "a\n  {%- if true -%}  \n  x  {% endif %}\nb", {}),
    ("ws_var_minus", "a \n {{- 1 -}} \n b {{ 2 }}\n c", {}),
    ("ws_var_no_lstrip", "a\n    {{ 1 }}\n    {{ 2 }}\n", {}),
    ("ws_comment", "a\n  {# note #}\nb {#- x -#} c\n{# multi\nline #}\nd", {}),
    ("ws_trailing_newline_dropped", "x\n", {}),
    ("ws_two_trailing_newlines", "x\n\n", {}),
    ("ws_crlf", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\nc\r\n", {}),
    ("ws_tabs_lstrip", "x\n\t \t{% if true %}\ny\n\t{% endif %}\n", {}),
    ("raw_block", "{% raw %}{{ not parsed }} {% if %}{% endraw %}|{%- raw -%}  {{x}}  {%- endraw %}|", {}),
    # literals and printing
    ("literals", "{{ 1 }} {{ -2 }} {{ 1.5 }} {{ 1e3 }} {{ 2.0 }} {{ 1_000 }} {{ 0x1f }} {{ 'a' \"b\" }} {{ true }} {{ False }} {{ none }} {{ None }}", {}),
    ("float_repr", "{{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1e16 }} {{ 1e15 }} {{ 0.0001 }} {{ 0.00001 }} {{ 2/3 }} {{ 1/3*3 }} {{ -0.0 }} {{ 123456789.123 }}", {}),
    ("string_escapes", "{{ 'a\\tb\\nc\\\\d\\'e\\\"f\\x41\\u00e9\\d' }}|{{ \"it's\" }}", {}),
    ("print_containers", "{{ [1, 'a', none, true, 1.5] }} {{ {'k': \"it's\", 'n': [1]} }} {{ (1,) }} {{ (1, 2) }} {{ [] }} {{ {} }}", {}),
    ("print_context_values", "{{ d }} {{ l }} {{ s }} {{ n }}", {"d": {"b": 1, "a": {"x": None}}, "l": ["é", "\n", "\x01"], "s": "plain", "n": None}),
    ("unicode_repr", "{{ ['é', '中文', '😀', '\\u200b', 'a\\x7fb'] }}", {}),
    # arithmetic and operators
    ("arith_int", "{{ 7 + 3 }} {{ 7 - 10 }} {{ 7 * 3 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 2 ** -1 }}", {}),
    ("arith_float", "{{ 1.5 + 1 }} {{ 3.0 // 2 }} {{ -3.5 % 2 }} {{ 2.5 * 2 }} {{ 10 / 4 }} {{ 9 ** 0.5 }}", {}),
    ("arith_bool", "{{ true + 1 }} {{ true * 3 }} {{ false - 1 }}", {}),
    ("precedence", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 10 - 2 - 3 }} {{ 1 ~ 2 * 3 }} {{ (1 + 2) ~ 3 }} {{ not 1 == 2 }} {{ -(l|length) }}", {"l": [1, 2]}),
    ("err_unary_minus_binds_before_filter", "{{ -l|length }}", {"l": [1, 2]}),
    ("err_precedence_concat_binds_tighter", "{{ 1 + 2 ~ 3 + 4 }}", {}),
    ("concat", "{{ 'a' ~ 1 ~ none ~ true ~ u ~ [1] }} {{ 'a' + 'b' }} {{ [1] + [2, 3] }} {{ 'ab' * 3 }} {{ 3 * 'x' }} {{ [0] * 2 }}", {}),
    ("comparisons", "{{ 1 == 1.0 }} {{ true == 1 }} {{ 'a' < 'b' }} {{ 'B' < 'a' }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ [1, 2] < [1, 3] }} {{ [1] == [1] }} {{ (1,) == [1] }} {{ none == none }} {{ u == v }} {{ u == none }} {{ 2 >= 2 }} {{ 'é' > 'z' }}", {}),
    ("in_operator", "{{ 'b' in 'abc' }} {{ 'x' not in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'v' in {'k': 'v'} }} {{ 'a' in u }} {{ not 'a' in 'b' }} {{ '' in 'x' }}", {}),
    ("and_or_values", "{{ 0 or 'x' }} {{ 'a' and 'b' }} {{ '' and 'b' }} {{ none or [] }} {{ u or 'dflt' }} {{ 1 and 0 or 5 }} {{ not none }} {{ not [] }} {{ not 'x' }}", {}),
    ("truthiness", "{% for v in [0, 1, '', 'a', [], [0], {}, none, 0.0, u] %}{{ 'T' if v else 'F' }}{% endfor %}", {}),
    ("cond_expr", "{{ 'y' if 1 else 'n' }} {{ 'y' if 0 else 'n' }} [{{ 'y' if 0 }}] {{ ('y' if 0) is defined }} {{ 'a' if 0 else 'b' if 1 else 'c' }}", {}),
    # variables, attribute and item access, slicing
    ("attr_vs_item", "{{ d.a }} {{ d['a'] }} {{ d.get('a') }} {{ d.get('zz', 'dflt') }} {{ d.get('zz') }} {{ d.items() }} {{ d.keys() }} {{ d.values() }} {{ l.0 }} {{ l[-1] }}", {"d": {"a": 1, "b": [2]}, "l": [10, 20]}),
    ("dict_method_shadows_key", "{{ d.items is defined }} {{ d['items'] }} {{ d.keys is defined }} {{ d['x'] }}", {"d": {"items": "K", "x": 1}}),
    ("missing_attr_is_undefined", "[{{ d.nope }}] [{{ l[5] }}] [{{ s.nope }}] [{{ s[10] }}] [{{ n.x }}] {{ d.nope is defined }} {{ d.nope is undefined }}", {"d": {}, "l": [1], "s": "ab", "n": None}),
    ("slicing", "{{ l[1:] }} {{ l[:2] }} {{ l[::-1] }} {{ l[::2] }} {{ l[-2:] }} {{ l[1:-1] }} {{ l[5:] }} {{ l[:-5] }} {{ s[::-1] }} {{ s[1:3] }} {{ s[-1] }} {{ s[0] }}", {"l": [1, 2, 3, 4], "s": "héllo"}),
    ("slice_negative_step_bounds", "{{ l[3:0:-1] }} {{ l[-1:-3:-1] }} {{ l[10::-2] }} {{ 'abcdef'[::-2] }} {{ 'abc'[:0] }}", {"l": [1, 2, 3, 4, 5]}),
    ("unicode_len_index", "{{ s|length }} {{ s[1] }} {{ s[-1] }} {{ s|upper }} {{ s|reverse }}", {"s": "é中😀x"}),
    # set and scoping
    ("set_scope_in_loop", "{% set x = 5 %}{% for i in [1, 2] %}[{{ x }}]{% set x = i %}({{ x }}){% endfor %}{{ x }}", {}),
    ("set_in_if_leaks", "{% if true %}{% set y = 3 %}{% endif %}{{ y }}", {}),
    ("set_tuple", "{% set a, b = [1, 2] %}{{ a }}{{ b }}{% set c, d = 'xy' %}{{ c }}{{ d }}{% set t = 1, 2 %}{{ t }}", {}),
    ("set_block", "{% set x %}  hi {{ 1 }} {% endset %}[{{ x }}]{% set y | upper %}abc{% endset %}{{ y }}", {}),
    ("namespace", "{% set ns = namespace(a=1, b='x') %}{% for i in [1, 2, 3] %}{% set ns.a = ns.a + i %}{% endfor %}{{ ns.a }} {{ ns.b }} {{ ns.c is defined }}{% set ns.c = [1] %} {{ ns.c }}", {}),
    ("namespace_from_dict", "{% set ns = namespace({'a': 1}, b=2) %}{{ ns.a }}{{ ns.b }}{% set ns2 = namespace() %}{% set ns2.x = 'y' %}{{ ns2.x }}", {}),
    ("shadow_context_var", "{{ messages|length }}{% set messages = messages[1:] %}{{ messages|length }}{% for m in messages %}{% set messages = [] %}{{ messages|length }}{% endfor %}{{ messages|length }}", {"messages": [1, 2, 3]}),
    # for loops
    ("loop_vars", "{% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}|{% endfor %}", {}),
    ("loop_prev_next_cycle", "{% for x in [1, 2, 3] %}{{ loop.previtem }}/{{ loop.nextitem }}/{{ loop.cycle('a', 'b') }} {% endfor %}", {}),
    # loop is updated in place between iterations; a stored loop.cycle and a nested loop must see the right state
    ("loop_state_each_iteration", "{% for x in 'abc' %}{% set c = loop.cycle %}{{ c(1, 2) }}{{ loop.index }}{{ loop.revindex }}{{ loop.first }}{{ loop.last }}{{ loop.previtem }}{{ loop.nextitem }}{% for y in [7, 8] %}{{ loop.index }}{{ y }}{{ c('p', 'q', 'r') }}{% endfor %}{{ loop.index0 }};{% endfor %}", {}),
    ("loop_else", "{% for x in [] %}y{% else %}empty{% endfor %}|{% for x in u %}y{% else %}undef-empty{% endfor %}|{% for x in [1] %}{{ x }}{% else %}no{% endfor %}", {}),
    ("loop_filter", "{% for x in range(10) if x is odd %}{{ x }}:{{ loop.index }}/{{ loop.length }} {% endfor %}", {}),
    ("loop_unpack_items", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k, v in d|items %}{{ k }}{{ v }}{% endfor %}{% for k in d %}{{ k }}{% endfor %}", {"d": {"b": 1, "a": 2}}),
    ("loop_nested", "{% for a in [1, 2] %}{% for b in 'xy' %}{{ a }}{{ b }}{{ loop.index }}{% endfor %}{{ loop.index }} {% endfor %}", {}),
    ("loop_break_continue", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}),
    ("loop_over_string_and_dict", "{% for c in 'hé' %}[{{ c }}]{% endfor %}{% for k in {'z': 1, 'a': 2} %}{{ k }}{% endfor %}", {}),
    ("loop_reverse_messages", "{% for m in messages[::-1] %}{{ (messages|length - 1) - loop.index0 }}{{ m.role[0] }} {% endfor %}", {"messages": MSGS}),
    ("loop_var_outside", "{% for x in [1] %}{% endfor %}[{{ x }}][{{ loop }}]", {}),
    # macros, with, filter blocks, generation
    ("macro_basic", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('a') }} {{ greet('b', '?') }} {{ greet(punct='.', name='c') }} [{{ greet() }}]", {}),
    ("macro_recursive", "{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(3) }}", {}),
    ("macro_sees_outer", "{% set g = 'G' %}{% macro m() %}{{ g }}{{ messages|length }}{% endmacro %}{{ m() }}", {"messages": [1]}),
    ("with_block", "{% set a = 1 %}{% with a = 2, b = a %}{{ a }}{{ b }}{% endwith %}{{ a }}", {}),
    ("filter_block", "{% filter upper %}abc {{ 'd' }}{% endfilter %}|{% filter trim|replace('a', 'b') %}  aa  {% endfilter %}|", {}),
    ("generation_tag", "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% else %}<{{ m.content }}>{% endif %}{% endfor %}", {"messages": MSGS}),
    ("generation_tag_scope", "{% set x = 1 %}{% generation %}{% set x = 2 %}{{ x }}{% endgeneration %}{{ x }}", {}),
    ("print_tag", "{% print 'x' ~ 1 %}", {}),
    # tests
    ("tests_types", "{% for v in [none, true, 1, 1.5, 'a', [1], {'a': 1}, u] %}{{ v is none }}{{ v is boolean }}{{ v is integer }}{{ v is float }}{{ v is number }}{{ v is string }}{{ v is mapping }}{{ v is iterable }}{{ v is sequence }}{{ v is defined }}|{% endfor %}", {}),
    ("tests_values", "{{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }} {{ 'abc' is lower }} {{ 'ABC' is upper }} {{ 1 is eq 1 }} {{ 1 is ne 1 }} {{ 2 is gt 1 }} {{ 2 is ge 2 }} {{ 1 is lt 2 }} {{ 1 is le 0 }} {{ 1 is in [1, 2] }} {{ true is true }} {{ 1 is true }} {{ false is false }} {{ none is sameas none }} {{ 'upper' is filter }} {{ 'odd' is test }} {{ 'nope' is filter }} {{ range is callable }}", {}),
    ("test_not", "{{ x is not none }} {{ x is not defined }} {{ not x is defined }} {{ u is not defined }}", {"x": 1}),
    ("enable_thinking_pattern", "{% if enable_thinking is defined and enable_thinking is false %}off{% elif enable_thinking is defined %}on{% else %}absent{% endif %}", {}),
    ("enable_thinking_false", "{% if enable_thinking is defined and enable_thinking is false %}off{% elif enable_thinking is defined %}on{% else %}absent{% endif %}", {"enable_thinking": False}),
    ("enable_thinking_true", "{% if enable_thinking is defined and enable_thinking is false %}off{% elif enable_thinking is defined %}on{% else %}absent{% endif %}", {"enable_thinking": True}),
    # filters
    ("filter_default", "{{ u|default('d') }} {{ none|default('d') }} {{ ''|default('d') }} {{ ''|default('d', true) }} {{ 0|d('z', boolean=true) }} {{ u|default }}|", {}),
    ("filter_length_count", "{{ 'héllo'|length }} {{ [1, 2]|count }} {{ {'a': 1}|length }} {{ u|length }}", {}),
    ("filter_trim_case", "{{ '  a b  '|trim }}|{{ 'xxaxx'|trim('x') }}|{{ 'aBc'|upper }}{{ 'AbC'|lower }}|{{ 'hello world-foo(bar)'|title }}|{{ \"it's ok\"|title }}|{{ 'hELLO wORLD'|capitalize }}", {}),
    ("filter_join_first_last", "{{ [1, 2, 3]|join(', ') }} {{ ['a', 'b']|join }} {{ [1, 2]|first }} {{ [1, 2]|last }} {{ 'abc'|first }} {{ 'abc'|last }} [{{ []|first }}] {{ ([]|first) is defined }}", {}),
    ("filter_join_attribute", "{{ messages|join(' / ', attribute='role') }}", {"messages": MSGS}),
    ("filter_replace", "{{ 'aaa'|replace('a', 'b') }} {{ 'aaa'|replace('a', 'b', 2) }} {{ 'abc'|replace('', '-') }} {{ 'x.y.z'.replace('.', '/') }}", {}),
    ("filter_items_list_string", "{{ {'a': 1, 'b': 2}|items|list }} {{ 'ab'|list }} {{ 12|string ~ 'x' }} {{ [1, 'a']|string }} {{ none|string }} {{ u|items|list }}", {}),
    ("filter_int_float", "{{ '42'|int }} {{ ' 7 '|int }} {{ '3.9'|int }} {{ 'x'|int }} {{ 'x'|int(-1) }} {{ 3.9|int }} {{ -3.9|int }} {{ true|int }} {{ '1_000'|int }} {{ 'ff'|int(base=16) }} {{ '2.5'|float }} {{ 'x'|float }} {{ 3|float }} {{ none|int }}", {}),
    ("filter_selectattr", "{{ messages|selectattr('role', 'equalto', 'user')|list|length }} {{ messages|rejectattr('role', 'equalto', 'user')|map(attribute='role')|join(',') }} {{ messages|selectattr('tool_calls', 'defined')|list|length }} {{ messages|selectattr('tool_calls')|map(attribute='role')|first }}", {"messages": MSGS}),
    ("filter_select_map", "{{ range(10)|select('odd')|list }} {{ range(5)|reject('even')|list }} {{ [0, 1, '', 'a']|select|list }} {{ ['a', 'b']|map('upper')|list }} {{ [1, 2]|map('string')|join('+') }} {{ [[1, 2], [3]]|map('length')|list }} {{ range(6)|select('divisibleby', 3)|list }} {{ [1, 5, 2]|select('>', 1)|list }}", {}),
    ("filter_map_attribute_default", "{{ [{'a': 1}, {}]|map(attribute='a', default=0)|list }} {{ [{'a': {'b': 'x'}}]|map(attribute='a.b')|list }}", {}),
    ("filter_sort_unique_reverse", "{{ [3, 1, 2]|sort }} {{ [3, 1, 2]|sort(reverse=true) }} {{ ['b', 'A', 'a', 'C']|sort }} {{ ['b', 'A', 'a']|sort(case_sensitive=true) }} {{ [{'n': 2}, {'n': 1}]|sort(attribute='n') }} {{ [1, 2, 1, 3]|unique|list }} {{ ['a', 'A', 'b']|unique|list }} {{ [1, 2, 3]|reverse|list }} {{ 'abc'|reverse }}", {}),
    ("filter_min_max_sum", "{{ [3, 1, 2]|min }} {{ [3, 1, 2]|max }} {{ ['b', 'A']|min }} {{ [1, 2, 3]|sum }} {{ [{'v': 1.5}, {'v': 2}]|sum(attribute='v') }} {{ [1]|sum(start=10) }}", {}),
    ("filter_abs_round", "{{ -3|abs }} {{ (-3)|abs }} {{ -2.5|abs }} {{ 2.567|round(2) }} {{ 2.5|round }} {{ 3.5|round }} {{ 2.1|round(0, 'ceil') }} {{ 2.9|round(method='floor') }} {{ 7|round }}", {}),
    ("filter_indent_center_wordcount", "{{ 'a\\nb\\n\\nc'|indent(2) }}|{{ 'a\\nb'|indent(2, true) }}|{{ 'a\\n\\nb'|indent('> ', blank=true) }}|{{ 'ab'|center(6) }}|{{ 'one two,three'|wordcount }}", {}),
    ("filter_batch_dictsort", "{{ [1, 2, 3, 4, 5]|batch(2)|list }} {{ [1, 2, 3]|batch(2, 'x')|list }} {{ {'b': 1, 'A': 2, 'c': 0}|dictsort }} {{ {'b': 1, 'a': 2}|dictsort(by='value') }} {{ {'b': 1, 'a': 2}|dictsort(reverse=true) }}", {}),
    ("filter_format_escape_truncate", "{{ '%s-%d-%05.2f'|format('a', 3, 2.5) }} {{ '%s and %s' % ('x', 'y') }} {{ '%(a)s' % {'a': 1} }} {{ '<a href=\"x\">&\\''|e }} {{ 'hello world foo bar'|truncate(12) }} {{ 'hello world foo bar'|truncate(12, true) }} {{ 'short'|truncate(3, leeway=5) }}", {}),
    ("filter_attr_safe_dflt", "{{ d|attr('a') }} {{ 'x'|safe }} {{ [1,2]|list|length }}", {"d": {"a": 5}}),
    ("tojson_basic", "{{ d|tojson }}|{{ 'é\\n\"\\\\\\u0001\\u2028'|tojson }}|{{ [1, 2.5, none, true, 1e20]|tojson }}|{{ u2 is defined }}", {"d": {"z": [1, {"y": None}], "a": "b", "é": "ü"}}),
    ("tojson_options", "{{ d|tojson(indent=2) }}|{{ d|tojson(indent='\\t') }}|{{ d|tojson(separators=(',', ':')) }}|{{ d|tojson(sort_keys=true) }}|{{ 'é😀'|tojson(ensure_ascii=true) }}|{{ []|tojson(indent=2) }}|{{ {}|tojson(indent=2) }}", {"d": {"b": [1, {"c": []}], "a": {}}}),
    ("tojson_tool_args_order", "{{ messages[2].tool_calls[0].function.arguments|tojson }}", {"messages": MSGS}),
    # str methods
    ("str_split", "{{ 'a,b,,c'.split(',') }} {{ '  a  b '.split() }} {{ 'a b c'.split(' ', 1) }} {{ 'a b c'.rsplit(' ', 1) }} {{ 'a<x>b<x>c'.split('<x>')[-1] }} {{ ''.split(',') }} {{ ''.split() }} {{ 'a\\tb\\nc'.split() }}", {}),
    ("str_strip", "[{{ '\\n\\n x \\n'.strip() }}] [{{ '\\n\\nx\\n'.lstrip('\\n') }}] [{{ 'xxaxx'.rstrip('x') }}] [{{ 'abcba'.strip('ab') }}] [{{ '\\u3000x\\u00a0'.strip() }}] [{{ 'x'.strip(none) }}]", {}),
    ("str_start_end", "{{ 'hello'.startswith('he') }} {{ 'hello'.endswith('lo') }} {{ 'hello'.startswith(('x', 'h')) }} {{ 'hello'.startswith('l', 2) }} {{ 'hello'.endswith('ll', 0, 4) }} {{ ''.startswith('') }}", {}),
    ("str_case_misc", "{{ 'hELLo wORLD'.title() }} {{ \"they're bill's\".title() }} {{ 'abc'.upper() }} {{ 'ÀÉ'.lower() }} {{ 'abc'.capitalize() }} {{ 'Ab'.swapcase() }} {{ 'ab'.find('b') }} {{ 'ab'.find('z') }} {{ 'abab'.rfind('a') }} {{ 'abab'.count('ab') }} {{ ', '.join(['a', 'b']) }} {{ 'x'.center(5, '*') }} {{ 'x'.ljust(3, '.') }}| {{ 'x'.rjust(3) }} {{ '42'.zfill(5) }} {{ '-4'.zfill(4) }}", {}),
    ("str_predicates", "{{ '123'.isdigit() }} {{ '12a'.isdigit() }} {{ 'abc'.isalpha() }} {{ 'a1'.isalnum() }} {{ ' \\t'.isspace() }} {{ ''.isspace() }} {{ 'abc'.islower() }} {{ 'ABC'.isupper() }} {{ 'a\\nb\\r\\nc'.splitlines() }} {{ 'a\\nb'.splitlines(true) }}", {}),
    ("str_format_method", "{{ '{} and {}'.format('a', 'b') }} {{ '{1}{0}'.format('x', 'y') }} {{ '{name}!'.format(name='n') }} {{ '{{}}{}'.format(1) }}", {}),
    ("qwen3_think_split", "{% set c = m.split('</think>')[-1].lstrip('\\n') %}{% set r = m.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}[{{ r }}][{{ c }}][{{ r.strip('\\n') }}]", {"m": "<think>\nSimple.\n</think>\n\n4"}),
    # globals
    ("range_dict_joiner_cycler", "{{ range(3)|list }} {{ range(1, 7, 2)|list }} {{ range(5, 0, -2)|list }} {{ dict(a=1, b='x') }} {% set j = joiner('|') %}{% for x in 'abc' %}{{ j() }}{{ x }}{% endfor %} {% set c = cycler('o', 'e') %}{{ c.next() }}{{ c.next() }}{{ c.next() }}{{ c.current }}", {}),
    ("special_tokens_context", "{{ bos_token }}|{{ eos_token }}|{{ pad_token is defined }}|{{ add_generation_prompt }}", {"bos_token": "<s>", "eos_token": "</s>", "add_generation_prompt": True}),
    ("tools_none_vs_undefined", "{{ tools is defined }} {{ tools is none }} {% if tools %}T{% else %}F{% endif %} {{ documents is none }} {{ xtools is defined }}", {"tools": None, "documents": None}),
    ("content_none_absent", "{% for m in messages %}[{{ m.content }}|{{ m.content is none }}|{{ m.content is defined }}]{% endfor %}", {"messages": [{"role": "assistant", "content": None}, {"role": "assistant"}, {"role": "user", "content": ""}]}),
    ("unsafe_attr_prints_empty", "[{{ l.append }}] [{{ d.pop }}] [{{ d.update is defined }}]", {"l": [], "d": {}}),
    # Jinja2's compile-time frame analysis (idtracking): names a frame writes first start out undefined
    ("scope_root_read_then_set", "{{ x }}{% set x = 1 %}{{ x }}", {"x": "X"}),
    ("scope_loop_reads_later_root_set", "{% for m in [1] %}[{{ x }}]{% endfor %}{% set x = 1 %}{{ x }}", {"x": "X"}),
    ("scope_if_reads_later_root_set", "{% if true %}[{{ x }}]{% endif %}{% set x = 1 %}{{ x }}", {"x": "X"}),
    ("scope_set_in_untaken_if", "{% if false %}{% set x = 1 %}{% endif %}[{{ x }}]", {"x": "X"}),
    ("scope_set_in_both_branches", "{% for m in [1] %}[{{ x }}]{% endfor %}{% if true %}{% set x = 1 %}{% else %}{% set x = 2 %}{% endif %}{{ x }}", {"x": "X"}),
    ("scope_loop_iteration_reset", "{% for i in [1, 2] %}{% if i == 2 %}[{{ x }}]{% endif %}{% set x = i %}{% endfor %}", {"x": "X"}),
    ("scope_loop_set_in_if_then_read", "{% for i in [1, 2] %}{% if i == 2 %}{% set x = i %}{% endif %}[{{ x }}]{% endfor %}", {"x": "X"}),
    ("scope_macro_reads_later_set", "{% macro m() %}[{{ x }}]{% endmacro %}{{ m() }}{% set x = 1 %}{{ m() }}", {"x": "X"}),
    ("scope_set_block_reads_later_set", "{% set sb %}[{{ x }}]{% endset %}{{ sb }}{% set x = 1 %}", {"x": "X"}),
    ("scope_nested_loop_reads_outer_later_set", "{% for i in [1] %}{% for j in [1] %}[{{ x }}]{% endfor %}{% set x = 2 %}[{{ x }}]{% endfor %}", {"x": "X"}),
    ("scope_for_else_own_frame", "{% for x in [] %}{% else %}{% set y = 1 %}[{{ y }}]{% endfor %}[{{ y }}]", {}),
    ("scope_with_reads_later_set", "{% with %}[{{ x }}]{% endwith %}{% set x = 1 %}", {"x": "X"}),
    # more whitespace corners
    ("ws_comment_line_start", "  {# c #}\nx\n  {#- d -#}  \ny", {}),
    ("ws_multiple_tags_one_line", "  {% if true %}{% if true %}\n  x\n  {% endif %}{% endif %}\ny", {}),
    ("ws_tag_at_template_start", "  {% if true %}x{% endif %}", {}),
    ("ws_raw_lstrip", "a\n  {% raw %}\n  x\n  {% endraw %}\nb", {}),
    ("ws_unicode_space_lstrip", "a\n\u3000{% if true %}\nb\n{% endif %}", {}),
    ("ws_var_minus_newlines", "a\n\n{{- 'b' -}}\n\n  c", {}),
    ("ws_text_then_tag_then_spaces", "text {% if true %}  \nmore{% endif %}", {}),
    ("ws_minus_comment_then_tag", "x  {#- c #}\n  {% if true %}y{% endif %}", {}),
    ("ws_else_on_own_line", "{% for i in [1, 2] %}\n    {% if i == 1 %}\n        one\n    {% else %}\n        two\n    {% endif %}\n{% endfor %}\n", {}),
    # more expressions
    ("braces_inside_var", "{{ {'a': {'b': 1}} }}|{{ {'a': 1}['a'] }}|{{ '}}' }}|{{ [1, 2,] }}|{{ () }}|{{ (1, 2)[0] }}", {}),
    ("cond_attr_chain", "{{ a.b.c if a.b is defined else 'n' }} {{ x.y|default('d') }} {{ x.get('y', 'g') }}", {"a": {"b": {"c": "C"}}, "x": {}}),
    ("loop_filter_attr", "{% for m in messages if m.role != 'system' %}{{ loop.index }}/{{ loop.length }}{{ m.role }} {% endfor %}", {"messages": MSGS}),
    ("slice_content", "{{ messages[0]['content'][:5] }}|{{ messages[1].content[-3:] }}", {"messages": MSGS}),
    ("floats_more", "{{ 3 * 1.1 }} {{ 1e-7 }} {{ 0.1 }} {{ 'abc' ~ 1.0 }} {{ -0.5|round }} {{ 1.5|round }} {{ 0.5|round }} {{ 1/4 }} {{ 2**0.5 }} {{ 1e300 * 1e10 }} {{ 5e-324 }}", {}),
    ("str_center_odd", "[{{ 'x'|center(4) }}] [{{ 'xy'|center(5) }}] [{{ 'x'.center(4) }}]", {}),
    ("undefined_through_filters", "[{{ u|upper }}][{{ u|trim }}][{{ u|string }}][{{ u|list }}][{{ u|join }}][{{ u|sort }}][{{ u|unique|list }}][{{ u|map('upper')|list }}][{{ u|select|list }}][{{ u is mapping }}][{{ u|reverse|list }}][{{ u|length }}][{{ u|count }}][{{ u|items|list }}][{{ u|capitalize }}][{{ u|title }}][{{ u|replace('a', 'b') }}][{{ u|sum }}][{{ u|min }}][{{ u|max }}][{{ u|batch(2)|list }}][{{ u|wordcount }}][{{ u|center(3) }}][{{ u|truncate }}][{{ u|e }}][{{ u|format }}][{{ u|selectattr('x')|list }}][{{ u|lower }}][{{ u|join(attribute='x') }}][{{ u|map(attribute='x')|list }}]", {}),
    ("err_undefined_int", "{{ u|int }}", {}),
    ("err_undefined_float", "{{ u|float }}", {}),
    ("err_undefined_dictsort", "{{ u|dictsort }}", {}),
    ("err_undefined_indent", "{{ u|indent }}", {}),
    ("err_undefined_attr_filter", "{{ u|attr('x') }}", {}),
    ("err_undefined_abs", "{{ u|abs }}", {}),
    ("err_undefined_round", "{{ u|round }}", {}),
    ("undefined_first_last", "[{{ u|first }}][{{ u|last }}]", {}),
    ("undefined_compare_in", "{{ u == 'x' }} {{ u == none }} {{ u in ['a'] }} {{ 'a' in u }} {{ not u }} {{ u ~ 1 }} {{ u|default(none) is none }} {{ u != u }}", {}),
    ("tuple_subscript_misses", "[{{ d[1, 2] }}] [{{ l[0, 1] }}] {{ d[1, 2] is defined }} {{ u is callable }} {{ d[] is defined }} {{ d.items() is sequence }} {{ d.keys() is iterable }}", {"d": {"a": 1}, "l": [1, 2]}),
    ("err_undefined_neg", "{{ -u }}", {}),
    ("err_undefined_index", "{{ u[0] }}", {}),
    ("err_undefined_attr_test", "{{ u.x is defined }}", {}),
    ("err_undefined_lt", "{{ u < 1 }}", {}),
    ("err_first_of_int", "{{ 5|first }}", {}),
    ("numbers_from_context", "{{ i + 1 }} {{ f * 2 }} {{ i / f }} {{ big }} {{ neg // 3 }} {{ f|int }} {{ i|float }}", {"i": 3, "f": 1.5, "big": 9007199254740993, "neg": -7}),
    ("bool_print_from_context", "{{ t }} {{ f }} {{ t and f }} {{ t|tojson }} {{ [t, f, none]|tojson }} {{ t|string|lower }}", {"t": True, "f": False}),
    ("content_list_gemma_style", "{% for item in c %}{% if item['type'] == 'text' %}{{ item['text']|trim }}{% elif item['type'] == 'image' %}<img>{% endif %}{% endfor %}|{{ c is string }}|{{ c is iterable }}|{{ c[0] is mapping }}", {"c": [{"type": "text", "text": " hi "}, {"type": "image"}]}),
    ("tojson_nested_unicode_escapes", "{{ d|tojson }}|{{ d|tojson(ensure_ascii=true) }}|{{ d|tojson(indent=1, sort_keys=true) }}", {"d": {"s": "tab\tnl\ncr\rbs\\q\"del\x7fnul\x00", "u": "\u2028\u00e9\U0001f600", "n": [1, -1, 0.5, 1e-7, 12345678901234567890.0]}}),
    ("string_methods_unicode", "{{ 'ÉCOLE'.lower() }} {{ 'straße'.upper() }} {{ 'ǆ'.title() }} {{ 'ﬁ'.upper() }} {{ 'i̇'.upper() }} {{ 'İ'.lower() }} {{ 'ßa'.title() }} {{ 'ßa'|title }} {{ 'ßA'.capitalize() }} {{ 'ﬁx'|upper }}", {}),
    # errors Jinja raises (class and message must match; syntax errors must report Jinja's line)
    ("err_undefined_attr", "{{ foo.bar }}", {}),
    ("err_undefined_attr_of_missing_key", "line1\n{{ d.x.y }}", {"d": {}}),
    ("err_undefined_element", "{{ l[5].bar }}", {"l": [1]}),
    ("err_undefined_call", "{{ foo() }}", {}),
    ("err_undefined_plus", "{{ u + 1 }}", {}),
    ("err_undefined_method", "{{ messages[0].content.startswith('x') }}", {"messages": [{"role": "user"}]}),
    ("err_str_attr_call", "{{ 'a'.foo() }}", {}),
    ("err_raise_exception", "{% if messages|length > 1 %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}", {"messages": [1, 2]}),
    ("err_raise_exception_nested", "{% for m in messages %}\n  {% if m.role == 'tool' %}\n    {{ raise_exception('Unexpected role: ' + m.role) }}\n  {% endif %}\n{% endfor %}", {"messages": [{"role": "user"}, {"role": "tool"}]}),
    ("err_type_concat_none", "{{ 'a' + none }}", {}),
    ("err_type_add_int_str", "{{ 1 + 'a' }}", {}),
    ("err_type_compare", "{{ 'a' < 1 }}", {}),
    ("err_type_in_none", "{{ 'a' in none }}", {}),
    ("err_type_len_int", "{{ 5|length }}", {}),
    ("err_tojson_undefined", "{{ u|tojson }}", {}),
    ("err_tojson_dict_view", "{{ {'a': 1}.items()|tojson }}", {}),
    ("err_dict_view_concat", "{{ {'a': 1}.keys() + [1] }}", {}),
    ("err_div_zero", "{{ 1 / 0 }}", {}),
    ("err_floordiv_zero", "{{ 1 // 0 }}", {}),
    ("err_mutation_blocked", "{{ l.append(1) }}", {"l": []}),
    ("err_namespace_assign_non_ns", "{% set d = {} %}{% set d.x = 1 %}", {}),
    ("err_iterate_none", "{% for x in n %}{% endfor %}", {"n": None}),
    ("err_unpack", "{% for a, b in [[1, 2, 3]] %}{% endfor %}", {}),
    ("err_syntax_unclosed_if", "{% if true %}\nx\n", {}),
    ("err_syntax_unknown_tag", "a\n{% frobnicate %}", {}),
    ("err_syntax_bad_expr", "{{ 1 + }}", {}),
    ("err_syntax_unexpected_end_tag", "x\n\n{% endfor %}", {}),
    ("err_syntax_unclosed_var", "a {{ b ", {}),
    ("err_syntax_unknown_filter", "line one\n{{ x|frobnicate }}", {}),
    ("err_syntax_unknown_test", "{% if x is frobnicated %}{% endif %}", {}),
    ("err_syntax_unclosed_comment", "a {# b", {}),
    ("err_syntax_unbalanced", "{{ (1 + 2 }}", {}),
    ("err_syntax_elif_after_else", "{% if a %}{% else %}{% elif b %}{% endif %}", {}),
    ("err_syntax_break_outside", "{% break %}", {}),
    ("unknown_filter_in_unreached_if", "{% if false %}{{ x|frobnicate }}{% endif %}ok", {}),
    ("err_unknown_filter_in_reached_if", "{% if true %}{{ x|frobnicate }}{% endif %}", {}),
]

# ---- chat families --------------------------------------------------------------------------------
TOKENS = {
    "llama3": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "llama3_1": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "mistral_v0_3": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
    "deepseek_r1_distill": {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>"},
    "qwen2_5": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    "gemma3": {"bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>", "pad_token": "<pad>"},
    # Qwen3's tokenizer_config.json: bos_token null, unk_token null.
    "qwen3": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
}

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city"],
        },
    },
}

CONVERSATIONS = {
    "single_user": [{"role": "user", "content": "What is 2+2?"}],
    "system_user": [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "Name a prime."}],
    "multi_turn": [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "  Count to three.  \n"},
    ],
    "assistant_last": [{"role": "user", "content": "Say yes."}, {"role": "assistant", "content": "Yes."}],
    "think_in_content": [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "<think>\nAdd them.\n</think>\n\n4"},
        {"role": "user", "content": "And 3+3?"},
    ],
    "reasoning_content_field": [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4", "reasoning_content": "\nTwo plus two.\n"},
        {"role": "user", "content": "Thanks"},
        {"role": "assistant", "content": "\n\nYou're welcome", "reasoning_content": "Polite."},
    ],
    "unicode": [{"role": "user", "content": "Ünïcödé 中文 😀 \"quotes\" \\backslash {{ not a tag }} {% nor this %}"}],
    "role_violation": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
    "tool_round_trip": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "call12345", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]},
        {"role": "tool", "tool_call_id": "call12345", "content": "{\"temperature\": 21}"},
        {"role": "assistant", "content": "It is 21 °C in Paris."},
        {"role": "user", "content": "And Oslo?"},
    ],
    "tool_multi_calls": [
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {"role": "assistant", "content": "<think>\nTwo cities.\n</think>\n\nChecking.", "tool_calls": [
            {"id": "call00001", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
            {"id": "call00002", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}},
        ]},
        {"role": "tool", "tool_call_id": "call00001", "content": "21"},
        {"role": "tool", "tool_call_id": "call00002", "content": "9"},
    ],
    "r1_tool_calls": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
            {"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}},
        ]},
        {"role": "tool", "content": "21"},
        {"role": "tool", "content": "9"},
        {"role": "assistant", "content": "<think>ok</think>Paris 21, Oslo 9."},
    ],
}

# (template, conversation, with_tools); each with add_generation_prompt true/false and, for
# thinking-aware templates, enable_thinking absent/true/false.
FAMILY_CASES = [
    ("llama3", "single_user", False), ("llama3", "system_user", False), ("llama3", "multi_turn", False),
    ("llama3", "unicode", False), ("llama3", "assistant_last", False),
    ("llama3_1", "single_user", False), ("llama3_1", "system_user", False), ("llama3_1", "multi_turn", False),
    ("llama3_1", "system_user", True), ("llama3_1", "tool_round_trip", True), ("llama3_1", "tool_multi_calls", True),
    ("mistral_v0_3", "single_user", False), ("mistral_v0_3", "multi_turn", False), ("mistral_v0_3", "role_violation", False),
    ("mistral_v0_3", "tool_round_trip", True), ("mistral_v0_3", "unicode", False),
    ("deepseek_r1_distill", "single_user", False), ("deepseek_r1_distill", "system_user", False),
    ("deepseek_r1_distill", "think_in_content", False), ("deepseek_r1_distill", "multi_turn", False),
    ("deepseek_r1_distill", "r1_tool_calls", False),
    ("qwen2_5", "single_user", False), ("qwen2_5", "system_user", False), ("qwen2_5", "multi_turn", False),
    ("qwen2_5", "tool_round_trip", True), ("qwen2_5", "tool_multi_calls", True), ("qwen2_5", "single_user", True),
    ("gemma3", "single_user", False), ("gemma3", "multi_turn", False), ("gemma3", "role_violation", False),
    ("gemma3", "unicode", False),
    ("qwen3", "reasoning_content_field", False), ("qwen3", "tool_round_trip", True), ("qwen3", "tool_multi_calls", True),
    ("qwen3", "multi_turn", False), ("qwen3", "unicode", False), ("qwen3", "assistant_last", False),
    ("qwen3", "think_in_content", True),
]
THINKING_AWARE = {"qwen3"}


def load_template(name):
    if name == "qwen3":
        with open(os.path.join(HERE, "qwen3", "tokenizer_config.json"), encoding="utf-8") as f:
            return json.load(f)["chat_template"]
    with open(os.path.join(HERE, "templates", name + ".jinja"), encoding="utf-8", newline="") as f:
        return f.read()


def main():
    print("jinja2", jinja2.__version__, file=sys.stderr)
    with open(os.path.join(HERE, "engine_reference.jsonl"), "w", encoding="utf-8") as out:
        names = set()
        for name, template, context in ENGINE:
            assert name not in names, name
            names.add(name)
            row = {"name": name, "template": template, "context": context}
            row.update(render_row(template, context))
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    with open(os.path.join(HERE, "families_reference.jsonl"), "w", encoding="utf-8") as out:
        for tname, conv, with_tools in FAMILY_CASES:
            template = load_template(tname)
            thinking_values = [None, True, False] if tname in THINKING_AWARE else [None]
            for agp in (True, False):
                for thinking in thinking_values:
                    context = {
                        "messages": CONVERSATIONS[conv],
                        "tools": [WEATHER_TOOL] if with_tools else None,
                        "documents": None,
                        "add_generation_prompt": agp,
                        **TOKENS[tname],
                    }
                    if thinking is not None:
                        context["enable_thinking"] = thinking
                    row = {"template": tname, "conversation": conv, "special_tokens": TOKENS[tname],
                           "messages": CONVERSATIONS[conv], "add_generation_prompt": agp}
                    if with_tools:
                        row["tools"] = [WEATHER_TOOL]
                    if thinking is not None:
                        row["enable_thinking"] = thinking
                    row.update(render_row(template, context))
                    out.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
