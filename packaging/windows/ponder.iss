; Inno Setup 6 script: Ponder-Setup-<version>.exe from the PyInstaller folder dist\Ponder.
;
;   iscc /DAppVersion=0.1.0 /DBundleDir=..\..\dist\Ponder /DOutputDir=..\..\dist packaging\windows\ponder.iss
;
; Signing (optional): pass /DSign and a sign tool named "signtool", e.g.
;   iscc /DSign "/Ssigntool=signtool.exe sign /fd sha256 /tr http://timestamp.digicert.com /td sha256 /f cert.pfx /p PASSWORD $f" ...
; Inno Setup then signs the installer and the uninstaller it writes. Sign Ponder.exe and
; ponder-cli.exe before this step (packaging\windows\build.ps1 does, when a certificate is given).
;
; Installs per user by default (no admin prompt, into %LOCALAPPDATA%\Programs\Ponder); the
; first page offers "for all users" (Program Files). Conversations and models live in
; %LOCALAPPDATA%\Ponder and are kept on uninstall: they are the user's.

#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif
#ifndef BundleDir
  #define BundleDir "..\..\dist\Ponder"
#endif
#ifndef OutputDir
  #define OutputDir "..\..\dist"
#endif

[Setup]
; The AppId identifies Ponder to Windows' uninstaller across versions: never change it.
AppId={{8C6F2D4B-6B0E-4A5C-9D51-2F0B7C3E9A11}
AppName=Ponder
AppVersion={#AppVersion}
AppVerName=Ponder {#AppVersion}
AppPublisher=Ponder
AppComments=Private, offline chat with reasoning models
VersionInfoVersion={#AppVersion}
VersionInfoProductName=Ponder
DefaultDirName={autopf}\Ponder
DefaultGroupName=Ponder
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
OutputDir={#OutputDir}
OutputBaseFilename=Ponder-Setup-{#AppVersion}
SetupIconFile=..\..\resources\ponder.ico
UninstallDisplayIcon={app}\Ponder.exe
UninstallDisplayName=Ponder
WizardStyle=modern
Compression=lzma2/max
SolidCompression=yes
; A running Ponder holds its DLLs open: ask to close it before files are replaced.
CloseApplications=yes
RestartApplications=no
#ifdef Sign
SignTool=signtool
SignedUninstaller=yes
#endif

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "{#BundleDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
; AppUserModelID matches the one the app sets (app/ui/main.py), so the taskbar groups the
; running window under this shortcut's icon.
Name: "{autoprograms}\Ponder"; Filename: "{app}\Ponder.exe"; AppUserModelID: "Ponder.Ponder"; Comment: "Chat with reasoning models, offline"
Name: "{autodesktop}\Ponder"; Filename: "{app}\Ponder.exe"; AppUserModelID: "Ponder.Ponder"; Tasks: desktopicon

[Run]
Filename: "{app}\Ponder.exe"; Description: "{cm:LaunchProgram,Ponder}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; Files the app may leave in its own folder (none by design); the user's data dir is not touched.
Type: filesandordirs; Name: "{app}\__pycache__"
