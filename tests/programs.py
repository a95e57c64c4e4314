"""Per-language test programs shared by the sandbox and end-to-end suites."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

# Every language's args, fail, broken and oom programs (tests/language_cases.toml).
CASES: dict[str, dict[str, Any]] = tomllib.loads(
    (Path(__file__).parent / "language_cases.toml").read_text(encoding="utf-8"))

# Each prints "hello " and the first line of its stdin.
ECHO = {
    "python": "import sys\nprint('hello', sys.stdin.read().strip())\n",
    "javascript": "const d=require('fs').readFileSync(0,'utf8');console.log('hello', d.trim());\n",
    # Node's globals through globalThis: compiles with or without Debian's @types/node.
    "typescript": "const p = (globalThis as any).process;\n"
                  "let d = '';\n"
                  "p.stdin.on('data', (c: string) => { d += c; });\n"
                  "p.stdin.on('end', () => console.log('hello', d.trim()));\n",
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
