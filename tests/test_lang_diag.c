/* Golden diagnostics: malformed .cnn sources, each with the exact text lang_compile reports
 * for it (spec section 9: file:line:col, the source line, the caret line).  One test per
 * source; the file name is always "t.cnn". */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "lang/lang.h"

/* Compiles the len bytes at src and checks the rendered diagnostics. */
static void expect_diags(const char *src, size_t len, const char *expected)
{
    /* a copy of exactly len bytes, so that nothing reads past the end */
    char *copy = malloc(len ? len : 1);
    cr_assert_not_null(copy);
    memcpy(copy, src, len);
    diag_list d;
    diag_init(&d, "t.cnn", copy, len);
    lang_program *p = lang_compile(copy, len, &d);
    cr_assert_not_null(p, "lang_compile returned NULL");
    char *text = diag_render(&d);
    cr_assert_not_null(text);
    cr_expect_gt(d.errors, 0, "no error reported");
    cr_expect_str_eq(text, expected, "diagnostics differ; got:\n%s\nexpected:\n%s", text, expected);
    free(text);
    lang_program_free(p);
    diag_free(&d);
    free(copy);
}

/* sizeof, not strlen: some sources hold a NUL byte */
#define GOLDEN(name, src, expected) \
    Test(lang_diag, name) { expect_diags(src, sizeof(src) - 1, expected); }

/* ---------------------------------------------------------------- Lexical errors */

GOLDEN(lex_unexpected_char,
       "network n {\n"
       "    input x[3];\n"
       "    output y = x -> relu $ -> relu;\n"
       "}\n",
       "t.cnn:3:26: error: unexpected character '$'\n"
       "        output y = x -> relu $ -> relu;\n"
       "                             ^\n")

GOLDEN(lex_unterminated_string,
       "network n {\n"
       "    input x[3];\n"
       "    output y = x -> dense(4, name=\"head);\n"
       "}\n",
       "t.cnn:3:35: error: unterminated string\n"
       "        output y = x -> dense(4, name=\"head);\n"
       "                                      ^~~~~~~\n"
       "t.cnn:4:1: error: syntax error: unexpected '}', expected ',', ')' or an operator\n"
       "    }\n"
       "    ^\n")

GOLDEN(lex_unknown_escape,
       "network n {\n"
       "    input x[3];\n"
       "    output y = x -> dense(4, name=\"a\\tb\");\n"
       "}\n",
       "t.cnn:3:37: error: unknown escape '\\t' in string; only \\\" and \\\\ are allowed\n"
       "        output y = x -> dense(4, name=\"a\\tb\");\n"
       "                                        ^~\n")

GOLDEN(lex_integer_too_large,
       "network n {\n"
       "    input x[3];\n"
       "    output y = x -> dense(99999999999999999999);\n"
       "}\n",
       "t.cnn:3:27: error: integer 99999999999999999999 is too large\n"
       "        output y = x -> dense(99999999999999999999);\n"
       "                              ^~~~~~~~~~~~~~~~~~~~\n")

GOLDEN(lex_invalid_number,
       "network n {\n"
       "    input x[3];\n"
       "    output y = x -> dense(4x) -> dropout(1.5.2);\n"
       "}\n",
       "t.cnn:3:27: error: invalid number '4x'\n"
       "        output y = x -> dense(4x) -> dropout(1.5.2);\n"
       "                              ^~\n"
       "t.cnn:3:42: error: invalid number '1.5.2'\n"
       "        output y = x -> dense(4x) -> dropout(1.5.2);\n"
       "                                             ^~~~~\n")

GOLDEN(lex_utf8_and_bytes,
       "network n {\n"
       "    input x[3];\n"
       "    output y = x -> r\xc3" "\xa9" "lu \x01" ";\n"
       "}\n",
       "t.cnn:3:22: error: unexpected character '\xc3" "\xa9" "'\n"
       "        output y = x -> r\xc3" "\xa9" "lu  ;\n"
       "                         ^\n"
       "t.cnn:3:24: error: syntax error: unexpected identifier 'lu', expected ';', '(' or an operator\n"
       "        output y = x -> r\xc3" "\xa9" "lu  ;\n"
       "                          ^~\n"
       "t.cnn:3:27: error: unexpected byte 0x01\n"
       "        output y = x -> r\xc3" "\xa9" "lu  ;\n"
       "                             ^\n")

GOLDEN(lex_nul_byte,
       "network n {\n"
       "    input x[3];\n"
       "    output y = x\x00" " -> relu;\n"
       "}\n",
       "t.cnn:3:17: error: unexpected byte 0x00\n"
       "        output y = x  -> relu;\n"
       "                    ^\n")

GOLDEN(lex_tab_alignment,
       "network n {\n"
       "\tinput x[3];\n"
       "\toutput y = x ->\t@relu;\n"
       "}\n",
       "t.cnn:3:18: error: unexpected character '@'\n"
       "    \toutput y = x ->\t@relu;\n"
       "    \t               \t^\n")

GOLDEN(lex_nul_in_string,
       "network n {\n"
       "    input x[3];\n"
       "    output y = x -> dense(4, name=\"a\x00" "b\");\n"
       "}\n",
       "t.cnn:3:37: error: string contains a NUL byte\n"
       "        output y = x -> dense(4, name=\"a b\");\n"
       "                                        ^\n")

GOLDEN(lex_number_out_of_range,
       "network n {\n"
       "    input x[3];\n"
       "    output y = x -> leaky_relu(1e999);\n"
       "}\n",
       "t.cnn:3:32: error: number 1e999 is out of range\n"
       "        output y = x -> leaky_relu(1e999);\n"
       "                                   ^~~~~\n")

/* ---------------------------------------------------------------- Syntax errors and recovery */

GOLDEN(syn_missing_semicolon,
       "network n {\n"
       "    input x[3];\n"
       "    h = x -> relu\n"
       "    output y = h;\n"
       "}\n",
       "t.cnn:4:5: error: syntax error: unexpected 'output', expected ';', '(' or an operator\n"
       "        output y = h;\n"
       "        ^~~~~~\n")

GOLDEN(syn_expected_expression,
       "network n {\n"
       "    input x[3, 8, 8];\n"
       "    output y = x -> conv2d(3,, 5);\n"
       "}\n",
       "t.cnn:3:30: error: syntax error: unexpected ',', expected an expression\n"
       "        output y = x -> conv2d(3,, 5);\n"
       "                                 ^\n")

GOLDEN(syn_several_errors,
       "network n {\n"
       "    input x[1, 28 28];\n"
       "    h = x -> conv2d(6 5);\n"
       "    g = h -> relu);\n"
       "    output y = g -> dense(10);\n"
       "}\n"
       "\n"
       "train n {\n"
       "    batch = 3 3;\n"
       "    epochs = 2;\n"
       "}\n",
       "t.cnn:2:19: error: syntax error: unexpected integer 28, expected ',' or ']'\n"
       "        input x[1, 28 28];\n"
       "                      ^~\n"
       "t.cnn:3:23: error: syntax error: unexpected integer 5, expected ',', ')' or an operator\n"
       "        h = x -> conv2d(6 5);\n"
       "                          ^\n"
       "t.cnn:4:18: error: syntax error: unexpected ')', expected ';', '(' or an operator\n"
       "        g = h -> relu);\n"
       "                     ^\n"
       "t.cnn:9:15: error: syntax error: unexpected integer 3, expected ';' or an operator\n"
       "        batch = 3 3;\n"
       "                  ^\n")

GOLDEN(syn_end_of_file,
       "network n {\n"
       "    input x[3];\n"
       "    output y = x -> relu;\n",
       "t.cnn:3:26: error: syntax error: unexpected end of file, expected 'input', 'output', 'return', '}' or an identifier\n"
       "        output y = x -> relu;\n"
       "                             ^\n")

GOLDEN(syn_top_level_garbage,
       "networks n {\n"
       "    input x[3];\n"
       "}\n"
       "\n"
       "network m {\n"
       "    input x[3];\n"
       "    output y = x -> relu;\n"
       "}\n",
       "t.cnn:1:1: error: syntax error: unexpected identifier 'networks', expected 'network', 'block' or 'train'\n"
       "    networks n {\n"
       "    ^~~~~~~~\n")

GOLDEN(syn_negative_dimension,
       "network n {\n"
       "    input x[-1, 4];\n"
       "    output y = x -> relu;\n"
       "}\n",
       "t.cnn:2:13: error: syntax error: unexpected '-', expected an integer\n"
       "        input x[-1, 4];\n"
       "                ^\n")

GOLDEN(syn_block_header,
       "block b(c { return in; }\n"
       "\n"
       "network n {\n"
       "    input x[3];\n"
       "    output y = x -> relu;\n"
       "}\n",
       "t.cnn:1:11: error: syntax error: unexpected '{', expected ',', ')' or '='\n"
       "    block b(c { return in; }\n"
       "              ^\n")

/* ---------------------------------------------------------------- Names, structure and types */

GOLDEN(sem_unknown_name,
       "network n {\n"
       "    input x[3];\n"
       "    h = x -> relu;\n"
       "    output y = hh -> relu;\n"
       "}\n",
       "t.cnn:4:16: error: unknown name 'hh'; did you mean 'h'?\n"
       "        output y = hh -> relu;\n"
       "                   ^~\n")

GOLDEN(sem_bound_twice,
       "network n {\n"
       "    input x[3];\n"
       "    h = x -> relu;\n"
       "    h = x -> tanh;\n"
       "    output y = h;\n"
       "}\n",
       "t.cnn:4:5: error: 'h' is already bound\n"
       "        h = x -> tanh;\n"
       "        ^\n")

GOLDEN(sem_used_before_bound,
       "network n {\n"
       "    input x[3];\n"
       "    output y = h -> relu;\n"
       "    h = x -> tanh;\n"
       "}\n",
       "t.cnn:3:16: error: 'h' is used before it is bound\n"
       "        output y = h -> relu;\n"
       "                   ^\n")

GOLDEN(sem_output_in_block,
       "block b() {\n"
       "    output y = in -> relu;\n"
       "    return in;\n"
       "}\n",
       "t.cnn:2:5: error: 'output' is only allowed in a network; a block ends with 'return'\n"
       "        output y = in -> relu;\n"
       "        ^~~~~~\n")

GOLDEN(sem_return_in_network,
       "network n {\n"
       "    input x[3];\n"
       "    return x -> relu;\n"
       "}\n",
       "t.cnn:1:9: error: network 'n' has no output\n"
       "    network n {\n"
       "            ^\n"
       "t.cnn:3:5: error: 'return' is only allowed in a block; a network names its results with 'output'\n"
       "        return x -> relu;\n"
       "        ^~~~~~\n")

GOLDEN(sem_block_without_return,
       "block b(c) {\n"
       "    y = in -> dense(c);\n"
       "}\n",
       "t.cnn:1:7: error: block 'b' has no 'return' statement\n"
       "    block b(c) {\n"
       "          ^\n")

GOLDEN(sem_return_not_last,
       "block b(c) {\n"
       "    return in -> dense(c);\n"
       "    y = in;\n"
       "}\n",
       "t.cnn:2:5: error: 'return' must be the last statement of block 'b'\n"
       "        return in -> dense(c);\n"
       "        ^~~~~~\n")

GOLDEN(sem_network_without_io,
       "network empty {\n"
       "    k = 3;\n"
       "}\n",
       "t.cnn:1:9: error: network 'empty' has no input\n"
       "    network empty {\n"
       "            ^~~~~\n"
       "t.cnn:1:9: error: network 'empty' has no output\n"
       "    network empty {\n"
       "            ^~~~~\n")

GOLDEN(sem_direct_recursion,
       "block r(c) {\n"
       "    return in -> dense(c) -> r(c);\n"
       "}\n",
       "t.cnn:2:30: error: block 'r' is recursive: r -> r\n"
       "        return in -> dense(c) -> r(c);\n"
       "                                 ^\n")

GOLDEN(sem_mutual_recursion,
       "block a(c) {\n"
       "    return in -> b(c);\n"
       "}\n"
       "\n"
       "block b(c) {\n"
       "    return in -> relu -> a(c);\n"
       "}\n"
       "\n"
       "network n {\n"
       "    input x[3];\n"
       "    output y = x -> a(4);\n"
       "}\n",
       "t.cnn:2:18: error: block 'a' is recursive: a -> b -> a\n"
       "        return in -> b(c);\n"
       "                     ^\n")

GOLDEN(sem_in_outside_block,
       "network n {\n"
       "    input x[3];\n"
       "    output y = in -> relu;\n"
       "}\n",
       "t.cnn:3:16: error: 'in' is only allowed inside a block\n"
       "        output y = in -> relu;\n"
       "                   ^~\n")

GOLDEN(sem_inexact_division,
       "network n {\n"
       "    input x[3];\n"
       "    output y = x -> dense(7 / 2);\n"
       "}\n",
       "t.cnn:3:27: error: integer division 7 / 2 is not exact\n"
       "        output y = x -> dense(7 / 2);\n"
       "                              ^~~~~\n")

GOLDEN(sem_division_by_zero,
       "network n {\n"
       "    input x[3];\n"
       "    output y = x -> dropout(1.0 / 0);\n"
       "}\n",
       "t.cnn:3:35: error: division by zero\n"
       "        output y = x -> dropout(1.0 / 0);\n"
       "                                      ^\n")

GOLDEN(sem_tensor_arithmetic,
       "network n {\n"
       "    input x[3];\n"
       "    a = x - x;\n"
       "    b = x * 2;\n"
       "    output y = x + 1;\n"
       "}\n",
       "t.cnn:3:11: error: invalid operands to '-': tensor and tensor\n"
       "        a = x - x;\n"
       "              ^\n"
       "t.cnn:4:11: error: invalid operands to '*': tensor and int\n"
       "        b = x * 2;\n"
       "              ^\n"
       "t.cnn:5:18: error: invalid operands to '+': tensor and int\n"
       "        output y = x + 1;\n"
       "                     ^\n")

GOLDEN(sem_count_times_layer,
       "network n {\n"
       "    input x[3];\n"
       "    output y = x -> 2 * relu;\n"
       "}\n",
       "t.cnn:3:23: error: invalid operands to '*': int and layer; to repeat a layer, write the layer first (layer * 2)\n"
       "        output y = x -> 2 * relu;\n"
       "                          ^\n")

GOLDEN(sem_bad_repetition,
       "network n {\n"
       "    input x[3];\n"
       "    a = x -> relu * 0;\n"
       "    output y = x -> relu * 1.5;\n"
       "}\n",
       "t.cnn:3:21: error: repetition count must be a positive integer, got 0\n"
       "        a = x -> relu * 0;\n"
       "                        ^\n"
       "t.cnn:4:28: error: repetition count must be a positive integer, got 1.5\n"
       "        output y = x -> relu * 1.5;\n"
       "                               ^~~\n")

GOLDEN(sem_arrow_operands,
       "network n {\n"
       "    input x[3];\n"
       "    a = 3 -> relu;\n"
       "    output y = x -> x;\n"
       "}\n",
       "t.cnn:3:9: error: the left side of '->' must be a tensor or a layer, got 3\n"
       "        a = 3 -> relu;\n"
       "            ^\n"
       "t.cnn:4:21: error: the right side of '->' must be a layer, got a tensor\n"
       "        output y = x -> x;\n"
       "                        ^\n")

GOLDEN(sem_output_not_tensor,
       "network n {\n"
       "    input x[3];\n"
       "    output y = dense(4) -> relu;\n"
       "}\n",
       "t.cnn:3:16: error: output 'y' must be a tensor, got a layer\n"
       "        output y = dense(4) -> relu;\n"
       "                   ^~~~~~~~~~~~~~~~\n")

GOLDEN(sem_block_returns_layer,
       "block b(c) {\n"
       "    return dense(c);\n"
       "}\n"
       "\n"
       "network n {\n"
       "    input x[3];\n"
       "    output y = x -> b(4);\n"
       "}\n",
       "t.cnn:2:12: error: block 'b' must return a tensor, got a layer\n"
       "        return dense(c);\n"
       "               ^~~~~~~~\n")

GOLDEN(sem_unknown_layer,
       "network n {\n"
       "    input x[3, 8, 8];\n"
       "    output y = x -> maxpol(2) -> flaten;\n"
       "}\n",
       "t.cnn:3:21: error: unknown layer 'maxpol'; did you mean 'maxpool'?\n"
       "        output y = x -> maxpol(2) -> flaten;\n"
       "                        ^~~~~~\n"
       "t.cnn:3:34: error: unknown layer 'flaten'; did you mean 'flatten'?\n"
       "        output y = x -> maxpol(2) -> flaten;\n"
       "                                     ^~~~~~\n")

GOLDEN(sem_add_is_an_operator,
       "network n {\n"
       "    input x[3];\n"
       "    output y = add(x, x);\n"
       "}\n",
       "t.cnn:3:16: error: unknown layer 'add'; tensors are added with '+'\n"
       "        output y = add(x, x);\n"
       "                   ^~~\n")

GOLDEN(sem_call_variable,
       "network n {\n"
       "    input x[3];\n"
       "    L = dense(4);\n"
       "    output y = x -> L(2);\n"
       "}\n",
       "t.cnn:4:21: error: 'L' is a variable, not a layer or block; it cannot be called\n"
       "        output y = x -> L(2);\n"
       "                        ^\n")

GOLDEN(sem_input_shape,
       "network n {\n"
       "    input x[3, 0, 8];\n"
       "    input z[1, 2, 3, 4, 5];\n"
       "    output y = x;\n"
       "}\n",
       "t.cnn:2:16: error: input 'x': dimensions must be positive, got 0\n"
       "        input x[3, 0, 8];\n"
       "                   ^\n"
       "t.cnn:3:13: error: input 'z' has 5 dimensions; 1 to 4 are supported ([F], [C, L], [C, H, W] or [C, D, H, W])\n"
       "        input z[1, 2, 3, 4, 5];\n"
       "                ^~~~~~~~~~~~~\n")

GOLDEN(sem_duplicate_layer_names,
       "network n {\n"
       "    input x[3];\n"
       "    output y = x -> dense(4, name=\"fc\") -> dense(4, name=\"fc\")\n"
       "        -> dense(8) -> dense(2, name=\"dense_3\");\n"
       "}\n",
       "t.cnn:3:58: error: duplicate layer name 'fc'\n"
       "        output y = x -> dense(4, name=\"fc\") -> dense(4, name=\"fc\")\n"
       "                                                             ^~~~\n"
       "t.cnn:4:38: error: layer name 'dense_3' is the automatic name of another layer\n"
       "            -> dense(8) -> dense(2, name=\"dense_3\");\n"
       "                                         ^~~~~~~~~\n")

GOLDEN(sem_named_layer_repeated,
       "network n {\n"
       "    input x[3];\n"
       "    output y = x -> dense(4, name=\"fc\") * 2;\n"
       "}\n",
       "t.cnn:3:35: error: duplicate layer name 'fc' (this layer is expanded more than once)\n"
       "        output y = x -> dense(4, name=\"fc\") * 2;\n"
       "                                      ^~~~\n")

GOLDEN(sem_redefinitions,
       "block relu(c) {\n"
       "    return in;\n"
       "}\n"
       "\n"
       "block b() {\n"
       "    return in;\n"
       "}\n"
       "\n"
       "block b() {\n"
       "    return in;\n"
       "}\n"
       "\n"
       "network n {\n"
       "    input x[3];\n"
       "    output y = x;\n"
       "}\n"
       "\n"
       "network n {\n"
       "    input x[3];\n"
       "    output y = x;\n"
       "}\n",
       "t.cnn:1:7: error: block 'relu' has the name of a built-in layer\n"
       "    block relu(c) {\n"
       "          ^~~~\n"
       "t.cnn:9:7: error: block 'b' is already defined\n"
       "    block b() {\n"
       "          ^\n"
       "t.cnn:18:9: error: network 'n' is already defined\n"
       "    network n {\n"
       "            ^\n")

GOLDEN(sem_bind_layer_name,
       "network n {\n"
       "    input dense[3];\n"
       "    relu = 3;\n"
       "    output y = dense;\n"
       "}\n",
       "t.cnn:2:11: error: cannot bind 'dense': it is the name of a layer\n"
       "        input dense[3];\n"
       "              ^~~~~\n"
       "t.cnn:3:5: error: cannot bind 'relu': it is the name of a layer\n"
       "        relu = 3;\n"
       "        ^~~~\n"
       "t.cnn:4:16: error: missing argument 'units' for dense\n"
       "        output y = dense;\n"
       "                   ^~~~~\n")

GOLDEN(sem_tuple_items,
       "network n {\n"
       "    input x[3, 8, 8];\n"
       "    output y = x -> conv2d(4, (3, 2.5));\n"
       "}\n",
       "t.cnn:3:35: error: tuple items must be integers, got 2.5\n"
       "        output y = x -> conv2d(4, (3, 2.5));\n"
       "                                      ^~~\n")

GOLDEN(sem_integer_overflow,
       "network n {\n"
       "    input x[3];\n"
       "    output y = x -> dense(9223372036854775807 + 1);\n"
       "}\n",
       "t.cnn:3:47: error: integer overflow in '+'\n"
       "        output y = x -> dense(9223372036854775807 + 1);\n"
       "                                                  ^\n")

GOLDEN(sem_concat,
       "network n {\n"
       "    input x[3];\n"
       "    a = concat(x);\n"
       "    b = concat(x, 3);\n"
       "    output y = x -> concat;\n"
       "}\n",
       "t.cnn:3:9: error: concat needs at least 2 tensors, got 1\n"
       "        a = concat(x);\n"
       "            ^~~~~~~~~\n"
       "t.cnn:4:19: error: concat: argument 2 must be a tensor, got 3\n"
       "        b = concat(x, 3);\n"
       "                      ^\n"
       "t.cnn:5:21: error: concat needs its input tensors as arguments, as in concat(a, b)\n"
       "        output y = x -> concat;\n"
       "                        ^~~~~~\n")

GOLDEN(sem_positional_after_named,
       "network n {\n"
       "    input x[3, 8, 8];\n"
       "    output y = x -> conv2d(filters=4, 3) -> dense(4, nme=\"fc\");\n"
       "}\n",
       "t.cnn:3:39: error: positional argument after named argument\n"
       "        output y = x -> conv2d(filters=4, 3) -> dense(4, nme=\"fc\");\n"
       "                                          ^\n"
       "t.cnn:3:54: error: unknown argument 'nme' for dense; did you mean 'name'?\n"
       "        output y = x -> conv2d(filters=4, 3) -> dense(4, nme=\"fc\");\n"
       "                                                         ^~~\n")

GOLDEN(sem_unary_minus,
       "network n {\n"
       "    input x[3];\n"
       "    output y = -x;\n"
       "}\n",
       "t.cnn:3:16: error: invalid operand to unary '-': tensor\n"
       "        output y = -x;\n"
       "                   ^~\n")

GOLDEN(sem_float_overflow,
       "network n {\n"
       "    input x[3];\n"
       "    output y = x -> leaky_relu(1e300 * 1e300);\n"
       "}\n",
       "t.cnn:3:38: error: result of '*' is out of range\n"
       "        output y = x -> leaky_relu(1e300 * 1e300);\n"
       "                                         ^\n")

GOLDEN(sem_in_in_default,
       "block b(c, d=in) {\n"
       "    return in -> dense(c);\n"
       "}\n",
       "t.cnn:1:14: error: 'in' cannot be used in a parameter's default value\n"
       "    block b(c, d=in) {\n"
       "                 ^~\n")

GOLDEN(sem_bind_block_name,
       "block b() {\n"
       "    return in;\n"
       "}\n"
       "\n"
       "network n {\n"
       "    input x[3];\n"
       "    b = x -> relu;\n"
       "    output y = x -> b;\n"
       "}\n",
       "t.cnn:7:5: error: cannot bind 'b': it is the name of a block\n"
       "        b = x -> relu;\n"
       "        ^\n")

GOLDEN(sem_name_too_long,
       "network n {\n"
       "    input x[3];\n"
       "    output yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy = x;\n"
       "}\n",
       "t.cnn:3:12: error: name 'yyyyyyyyyyyyyyyyyyyy...' is too long (at most 95 characters)\n"
       "        output yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy = x;\n"
       "               ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~\n")

/* ---------------------------------------------------------------- Layer and block arguments */

GOLDEN(arg_negative_filters,
       "network n {\n"
       "    input x[1, 28, 28];\n"
       "    h = x -> conv2d(-3, 5);\n"
       "    output y = h;\n"
       "}\n",
       "t.cnn:3:21: error: conv2d: 'filters' must be a positive integer, got -3\n"
       "        h = x -> conv2d(-3, 5);\n"
       "                        ^~\n")

GOLDEN(arg_unknown_argument,
       "network n {\n"
       "    input x[3, 8, 8];\n"
       "    output y = x -> maxpool(2, strid=1);\n"
       "}\n",
       "t.cnn:3:32: error: unknown argument 'strid' for maxpool; did you mean 'stride'?\n"
       "        output y = x -> maxpool(2, strid=1);\n"
       "                                   ^~~~~\n")

GOLDEN(arg_duplicate_argument,
       "network n {\n"
       "    input x[3, 8, 8];\n"
       "    output y = x -> conv2d(4, 3, kernel=5);\n"
       "}\n",
       "t.cnn:3:34: error: argument 'kernel' for conv2d is given twice\n"
       "        output y = x -> conv2d(4, 3, kernel=5);\n"
       "                                     ^~~~~~\n")

GOLDEN(arg_missing_argument,
       "network n {\n"
       "    input x[3, 8, 8];\n"
       "    output y = x -> conv2d(4) -> dense;\n"
       "}\n",
       "t.cnn:3:21: error: missing argument 'kernel' for conv2d\n"
       "        output y = x -> conv2d(4) -> dense;\n"
       "                        ^~~~~~~~~\n"
       "t.cnn:3:34: error: missing argument 'units' for dense\n"
       "        output y = x -> conv2d(4) -> dense;\n"
       "                                     ^~~~~\n")

GOLDEN(arg_float_for_int,
       "network n {\n"
       "    input x[3];\n"
       "    output y = x -> dense(2.5);\n"
       "}\n",
       "t.cnn:3:27: error: dense: 'units' must be a positive integer, got 2.5\n"
       "        output y = x -> dense(2.5);\n"
       "                              ^~~\n")

GOLDEN(arg_tuple_not_allowed,
       "network n {\n"
       "    input x[3, 16];\n"
       "    output y = x -> conv1d(4, (3, 3));\n"
       "}\n",
       "t.cnn:3:31: error: conv1d: 'kernel' must be a positive integer, got (3, 3)\n"
       "        output y = x -> conv1d(4, (3, 3));\n"
       "                                  ^~~~~~\n")

GOLDEN(arg_pad_string,
       "network n {\n"
       "    input x[3, 8, 8];\n"
       "    output y = x -> conv2d(4, 3, pad=\"valid\");\n"
       "}\n",
       "t.cnn:3:38: error: conv2d: 'pad' must be a non-negative integer, a pair of non-negative integers, or \"same\", got \"valid\"\n"
       "        output y = x -> conv2d(4, 3, pad=\"valid\");\n"
       "                                         ^~~~~~~\n")

GOLDEN(arg_unit_interval,
       "network n {\n"
       "    input x[3];\n"
       "    output y = x -> dropout(1) -> dropout(p=-0.5);\n"
       "}\n",
       "t.cnn:3:29: error: dropout: 'p' must be a number in [0, 1), got 1\n"
       "        output y = x -> dropout(1) -> dropout(p=-0.5);\n"
       "                                ^\n"
       "t.cnn:3:45: error: dropout: 'p' must be a number in [0, 1), got -0.5\n"
       "        output y = x -> dropout(1) -> dropout(p=-0.5);\n"
       "                                                ^~~~\n")

GOLDEN(arg_positive_float,
       "network n {\n"
       "    input x[3];\n"
       "    output y = x -> batchnorm(eps=0);\n"
       "}\n",
       "t.cnn:3:35: error: batchnorm: 'eps' must be a positive number, got 0\n"
       "        output y = x -> batchnorm(eps=0);\n"
       "                                      ^\n")

GOLDEN(arg_too_many,
       "network n {\n"
       "    input x[3, 8, 8];\n"
       "    output y = x -> maxpool(2, 2, 0, 1) -> relu(1);\n"
       "}\n",
       "t.cnn:3:38: error: too many arguments for maxpool: it takes at most 3\n"
       "        output y = x -> maxpool(2, 2, 0, 1) -> relu(1);\n"
       "                                         ^\n"
       "t.cnn:3:49: error: too many arguments for relu: it takes none\n"
       "        output y = x -> maxpool(2, 2, 0, 1) -> relu(1);\n"
       "                                                    ^\n")

GOLDEN(arg_bool,
       "network n {\n"
       "    input x[3];\n"
       "    output y = x -> dense(4, bias=1);\n"
       "}\n",
       "t.cnn:3:35: error: dense: 'bias' must be true or false, got 1\n"
       "        output y = x -> dense(4, bias=1);\n"
       "                                      ^\n")

GOLDEN(arg_block_arguments,
       "block b(c, k=3) {\n"
       "    return in -> dense(c * k);\n"
       "}\n"
       "\n"
       "network n {\n"
       "    input x[3];\n"
       "    a = x -> b(4, 1, 2);\n"
       "    c = x -> b(d=4);\n"
       "    e = x -> b(k=2);\n"
       "    output y = x -> b(x);\n"
       "}\n",
       "t.cnn:7:22: error: too many arguments for b: it takes at most 2\n"
       "        a = x -> b(4, 1, 2);\n"
       "                         ^\n"
       "t.cnn:8:16: error: unknown argument 'd' for b\n"
       "        c = x -> b(d=4);\n"
       "                   ^\n"
       "t.cnn:9:14: error: missing argument 'c' for b\n"
       "        e = x -> b(k=2);\n"
       "                 ^~~~~~\n"
       "t.cnn:10:23: error: b: 'c' must be a compile-time value, got a tensor\n"
       "        output y = x -> b(x);\n"
       "                          ^\n")

GOLDEN(arg_empty_name,
       "network n {\n"
       "    input x[3];\n"
       "    output y = x -> dense(4, name=\"\");\n"
       "}\n",
       "t.cnn:3:35: error: dense: 'name' must not be empty\n"
       "        output y = x -> dense(4, name=\"\");\n"
       "                                      ^~\n")

GOLDEN(arg_nonneg_tuple,
       "network n {\n"
       "    input x[3, 8, 8];\n"
       "    output y = x -> conv2d(4, 3, pad=(1, -1)) -> maxpool((2, 0));\n"
       "}\n",
       "t.cnn:3:38: error: conv2d: 'pad' must be a non-negative integer, a pair of non-negative integers, or \"same\", got (1, -1)\n"
       "        output y = x -> conv2d(4, 3, pad=(1, -1)) -> maxpool((2, 0));\n"
       "                                         ^~~~~~~\n"
       "t.cnn:3:58: error: maxpool: 'size' must be a positive integer or a pair of positive integers, got (2, 0)\n"
       "        output y = x -> conv2d(4, 3, pad=(1, -1)) -> maxpool((2, 0));\n"
       "                                                             ^~~~~~\n")

GOLDEN(arg_long_name,
       "network n {\n"
       "    input x[3];\n"
       "    output y = x -> dense(4, name=\"wwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwww\");\n"
       "}\n",
       "t.cnn:3:35: error: dense: 'name' is too long (at most 64 characters)\n"
       "        output y = x -> dense(4, name=\"wwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwww\");\n"
       "                                      ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~\n")

GOLDEN(arg_concat_named,
       "network n {\n"
       "    input x[3];\n"
       "    output y = concat(x, x, axis=0);\n"
       "}\n",
       "t.cnn:3:29: error: unknown argument 'axis' for concat\n"
       "        output y = concat(x, x, axis=0);\n"
       "                                ^~~~\n")

/* ---------------------------------------------------------------- Train sections */

GOLDEN(train_unknown_setting,
       "network n {\n"
       "    input x[3];\n"
       "    output y = x -> dense(2);\n"
       "}\n"
       "\n"
       "train n {\n"
       "    bach = 32;\n"
       "    lr = 0.1;\n"
       "}\n",
       "t.cnn:7:5: error: unknown setting 'bach' in train section; did you mean 'batch'?\n"
       "        bach = 32;\n"
       "        ^~~~\n"
       "t.cnn:8:5: error: unknown setting 'lr' in train section; 'lr' is an argument of the optimizer, as in optimizer = sgd(lr=...)\n"
       "        lr = 0.1;\n"
       "        ^~\n")

GOLDEN(train_unknown_network,
       "network lenet5 {\n"
       "    input x[3];\n"
       "    output y = x -> dense(2);\n"
       "}\n"
       "\n"
       "train lenet {\n"
       "    batch = 32;\n"
       "}\n",
       "t.cnn:6:7: error: train section for unknown network 'lenet'; did you mean 'lenet5'?\n"
       "    train lenet {\n"
       "          ^~~~~\n")

GOLDEN(train_unknown_values,
       "network n {\n"
       "    input x[3];\n"
       "    output y = x -> dense(2);\n"
       "}\n"
       "\n"
       "train n {\n"
       "    loss = mes;\n"
       "    optimizer = adamw(lr=0.1);\n"
       "}\n",
       "t.cnn:7:12: error: unknown loss 'mes'; did you mean 'mse'?\n"
       "        loss = mes;\n"
       "               ^~~\n"
       "t.cnn:8:17: error: unknown optimizer 'adamw'; did you mean 'adam'?\n"
       "        optimizer = adamw(lr=0.1);\n"
       "                    ^~~~~\n")

GOLDEN(train_counts,
       "network n {\n"
       "    input x[3];\n"
       "    output y = x -> dense(2);\n"
       "}\n"
       "\n"
       "train n {\n"
       "    batch = 0;\n"
       "    epochs = 2.5;\n"
       "}\n",
       "t.cnn:7:13: error: 'batch' must be a positive integer, got 0\n"
       "        batch = 0;\n"
       "                ^\n"
       "t.cnn:8:14: error: 'epochs' must be a positive integer, got 2.5\n"
       "        epochs = 2.5;\n"
       "                 ^~~\n")

GOLDEN(train_optimizer_args,
       "network n {\n"
       "    input x[3];\n"
       "    output y = x -> dense(2);\n"
       "}\n"
       "\n"
       "train n {\n"
       "    optimizer = sgd(momentum=0.9, nesterov=true, lr=0);\n"
       "}\n"
       "\n"
       "network m {\n"
       "    input x[3];\n"
       "    output y = x -> dense(2);\n"
       "}\n"
       "\n"
       "train m {\n"
       "    optimizer = sgd(lr=0.1, nesterov=true);\n"
       "    loss = mse;\n"
       "    loss = cross_entropy;\n"
       "}\n"
       "\n"
       "train m {\n"
       "}\n",
       "t.cnn:7:53: error: sgd: 'lr' must be a positive number, got 0\n"
       "        optimizer = sgd(momentum=0.9, nesterov=true, lr=0);\n"
       "                                                        ^\n"
       "t.cnn:16:38: error: sgd: nesterov needs a positive momentum\n"
       "        optimizer = sgd(lr=0.1, nesterov=true);\n"
       "                                         ^~~~\n"
       "t.cnn:18:5: error: setting 'loss' is given twice\n"
       "        loss = cross_entropy;\n"
       "        ^~~~\n"
       "t.cnn:21:7: error: network 'm' already has a train section\n"
       "    train m {\n"
       "          ^\n")

GOLDEN(train_adam_args,
       "network n {\n"
       "    input x[3];\n"
       "    output y = x -> dense(2);\n"
       "}\n"
       "\n"
       "train n {\n"
       "    optimizer = adam(beta1=1.0, eps=-1, betas=2);\n"
       "}\n",
       "t.cnn:7:28: error: adam: 'beta1' must be a number in [0, 1), got 1.0\n"
       "        optimizer = adam(beta1=1.0, eps=-1, betas=2);\n"
       "                               ^~~\n"
       "t.cnn:7:37: error: adam: 'eps' must be a positive number, got -1\n"
       "        optimizer = adam(beta1=1.0, eps=-1, betas=2);\n"
       "                                        ^~\n"
       "t.cnn:7:41: error: unknown argument 'betas' for adam; did you mean 'beta1'?\n"
       "        optimizer = adam(beta1=1.0, eps=-1, betas=2);\n"
       "                                            ^~~~~\n")

GOLDEN(train_bad_forms,
       "network n {\n"
       "    input x[3];\n"
       "    output y = x -> dense(2);\n"
       "}\n"
       "\n"
       "train n {\n"
       "    loss = 3;\n"
       "    optimizer = 0.1;\n"
       "    epochs = relu;\n"
       "    batch = bs;\n"
       "}\n",
       "t.cnn:7:12: error: 'loss' must be cross_entropy or mse\n"
       "        loss = 3;\n"
       "               ^\n"
       "t.cnn:8:17: error: 'optimizer' must be sgd(...) or adam(...)\n"
       "        optimizer = 0.1;\n"
       "                    ^~~\n"
       "t.cnn:9:14: error: 'epochs' must be a positive integer, got a layer\n"
       "        epochs = relu;\n"
       "                 ^~~~\n"
       "t.cnn:10:13: error: unknown name 'bs'\n"
       "        batch = bs;\n"
       "                ^~\n")

