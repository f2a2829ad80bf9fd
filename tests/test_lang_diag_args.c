/* Golden diagnostics, continued from test_lang_diag.c: layer and block arguments and train
 * sections, each malformed source with the exact text lang_compile reports for it (spec
 * section 9).  The file name is always "t.cnn". */
#include "tests/lang_util.h"

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
       "    optimizer = adan(lr=0.1);\n"
       "}\n",
       "t.cnn:7:12: error: unknown loss 'mes'; did you mean 'mse'?\n"
       "        loss = mes;\n"
       "               ^~~\n"
       "t.cnn:8:17: error: unknown optimizer 'adan'; did you mean 'adam'?\n"
       "        optimizer = adan(lr=0.1);\n"
       "                    ^~~~\n")

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
       "t.cnn:8:17: error: 'optimizer' must be sgd(...), adam(...) or adamw(...)\n"
       "        optimizer = 0.1;\n"
       "                    ^~~\n"
       "t.cnn:9:14: error: 'epochs' must be a positive integer, got a layer\n"
       "        epochs = relu;\n"
       "                 ^~~~\n"
       "t.cnn:10:13: error: unknown name 'bs'\n"
       "        batch = bs;\n"
       "                ^~\n")

