"""Per-language test programs shared by the sandbox and end-to-end suites."""

from __future__ import annotations

# Each prints "hello " and the first line of its stdin.
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
