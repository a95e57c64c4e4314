"""Every registered language runs hello-world and reads stdin through the bwrap backend."""

from __future__ import annotations

import pytest
from runstream.services.sandbox.bwrap import BwrapSandbox

from .conftest import REGISTRY, run_code

pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(120)]

ECHO = {
    "python": "import sys\nprint('hello', sys.stdin.read().strip())\n",
    "javascript": "const d=require('fs').readFileSync(0,'utf8');console.log('hello', d.trim());\n",
    "typescript": "declare const require: any;\n"
                  "const d: string = require('fs').readFileSync(0, 'utf8');\n"
                  "console.log('hello', d.trim());\n",
    "java": "import java.util.*;\npublic class Main { public static void main(String[] a) {"
            " Scanner s = new Scanner(System.in);"
            " System.out.println(\"hello \" + s.nextLine().trim()); } }\n",
    "c": "#include <stdio.h>\nint main(){char b[100];if(!fgets(b,100,stdin))return 1;"
         "printf(\"hello %s\",b);return 0;}\n",
    "cpp": "#include <iostream>\n#include <string>\n"
           "int main(){std::string s;std::getline(std::cin,s);std::cout<<\"hello \"<<s<<'\\n';}\n",
    "go": "package main\nimport (\"bufio\"; \"fmt\"; \"os\")\n"
          "func main(){r:=bufio.NewReader(os.Stdin);s,_:=r.ReadString('\\n');"
          "fmt.Print(\"hello \",s)}\n",
    "rust": "use std::io::Read;\nfn main(){let mut s=String::new();"
            "std::io::stdin().read_to_string(&mut s).unwrap();println!(\"hello {}\", s.trim());}\n",
    "ruby": "puts \"hello #{STDIN.read.strip}\"\n",
    "perl": "my $l = <STDIN>; chomp $l; print \"hello $l\\n\";\n",
    "php": "<?php $l = trim(fgets(STDIN)); echo \"hello $l\\n\";\n",
    "bash": "read l; echo \"hello $l\"\n",
}


def test_every_language_has_a_program() -> None:
    assert set(ECHO) == set(REGISTRY.names())


@pytest.mark.parametrize("name", sorted(ECHO))
async def test_hello_and_stdin(sandbox: BwrapSandbox, name: str) -> None:
    r = await run_code(sandbox, name, ECHO[name], stdin=b"world\n")
    assert (r.exit_code, r.signal, r.stdout) == (0, None, b"hello world\n"), r
    assert r.time_limit is None and not r.oom_killed
    assert 0 < r.memory_kb < 256 * 1024
