/* Golden diagnostics: malformed .cnn sources, each with the exact text lang_compile reports
 * for it (spec section 9: file:line:col, the source line, the caret line).  One test per
 * source; the file name is always "t.cnn".  Lexical, syntax and name/structure/type errors here;
 * layer and block arguments and train sections are in test_lang_diag_args.c. */
#include "tests/lang_util.h"

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

