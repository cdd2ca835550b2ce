# Build Ponder for Windows: the frozen folder (Ponder.exe + ponder-cli.exe) and Ponder-Setup-<version>.exe.
#
#   powershell -File packaging\windows\build.ps1 [-Python python] [-SkipFreeze]
#
# The Python must have Ponder's dependencies, PyInstaller, and the release engine installed
# (pip install dist\engine\llama_cpp_python-*.whl, from packaging\build_engine.py).
# Needs Inno Setup 6 (ISCC.exe; preinstalled on GitHub's Windows runners).
# Signing: set PONDER_SIGN_PFX (path to a .pfx) and PONDER_SIGN_PASSWORD; the exes, the
# installer and its uninstaller are then signed with signtool and an RFC 3161 timestamp.
param(
    [string]$Python = "python",
    [switch]$SkipFreeze
)
$ErrorActionPreference = "Stop"
$Root = (Resolve-Path "$PSScriptRoot\..\..").Path
Set-Location $Root
$Version = (Select-String -Path "app\__init__.py" -Pattern '__version__ = "(.+)"').Matches[0].Groups[1].Value
$Dist = "$Root\build\windows\dist"
$Bundle = "$Dist\Ponder"

if (-not $SkipFreeze) {
    & $Python -m PyInstaller --noconfirm --clean --log-level WARN --distpath $Dist --workpath "$Root\build\windows\work" packaging\ponder.spec
    if ($LASTEXITCODE -ne 0) { throw "PyInstaller failed" }
}
foreach ($exe in "Ponder.exe", "ponder-cli.exe") {
    if (-not (Test-Path "$Bundle\$exe")) { throw "missing $Bundle\$exe" }
}

$Timestamp = "http://timestamp.digicert.com"
$IsccArgs = @("/DAppVersion=$Version", "/DBundleDir=$Bundle", "/DOutputDir=$Root\dist")
if ($env:PONDER_SIGN_PFX) {
    $SignTool = (Get-ChildItem "${env:ProgramFiles(x86)}\Windows Kits\10\bin\*\x64\signtool.exe" | Sort-Object FullName | Select-Object -Last 1).FullName
    & $SignTool sign /fd sha256 /tr $Timestamp /td sha256 /f $env:PONDER_SIGN_PFX /p $env:PONDER_SIGN_PASSWORD "$Bundle\Ponder.exe" "$Bundle\ponder-cli.exe"
    if ($LASTEXITCODE -ne 0) { throw "signing the exes failed" }
    $IsccArgs += "/DSign"
    $IsccArgs += "/Ssigntool=`"$SignTool`" sign /fd sha256 /tr $Timestamp /td sha256 /f `"$env:PONDER_SIGN_PFX`" /p $env:PONDER_SIGN_PASSWORD `$f"
}
$Iscc = "${env:ProgramFiles(x86)}\Inno Setup 6\ISCC.exe"
if (-not (Test-Path $Iscc)) { $Iscc = "ISCC.exe" }
& $Iscc @IsccArgs "packaging\windows\ponder.iss"
if ($LASTEXITCODE -ne 0) { throw "Inno Setup failed" }

$Setup = "$Root\dist\Ponder-Setup-$Version.exe"
$BundleMiB = [math]::Round(((Get-ChildItem $Bundle -Recurse | Measure-Object Length -Sum).Sum / 1MB), 1)
$SetupMiB = [math]::Round((Get-Item $Setup).Length / 1MB, 1)
Write-Output "bundle     $Bundle  $BundleMiB MiB"
Write-Output "installer  $Setup  $SetupMiB MiB"
